package build

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hershyorg/hershy/internal/build/internal/fwzip"
	"github.com/hershyorg/hershy/internal/source"
)

// WarmUp compiles a small program that imports the framework and throws
// the result away, so the shared build cache holds the standard library and
// the framework as program builds need them. Without it the first Go-source
// build compiles all of that itself (about 40 s on a 2-core machine, against
// about 1 s warm). Run it in the background when the Host starts; it is
// harmless to run again (then it takes about a second).
func (b *Builder) WarmUp(ctx context.Context, log io.Writer) error {
	if b.goErr != nil {
		return b.goErr
	}
	if log == nil {
		log = io.Discard
	}
	work, err := os.MkdirTemp(b.workDir, "warmup-")
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	defer os.RemoveAll(work)
	gomod := "module hershy.local/warmup\n\n"
	if v := frameworkGoLine(); v != "" {
		gomod += "go " + v + "\n\n"
	}
	gomod += "require " + FrameworkModule + " v0.0.0\n"
	files := source.Files{
		"go.mod":  gomod,
		"main.go": "package main\n\nimport \"github.com/hershyorg/hershy/hersh\"\n\nfunc main() { _ = hersh.DefaultConfig() }\n",
	}
	return b.compileGo(ctx, work, files, filepath.Join(work, "app"), newLogLimiter(log, b.opts.MaxLog))
}

// frameworkGoLine returns the go version of the embedded framework's go.mod.
func frameworkGoLine() string {
	files, err := fwzip.Unzip(frameworkZip)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(strings.NewReader(files["go.mod"]))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "go" {
			return f[1]
		}
	}
	return ""
}
