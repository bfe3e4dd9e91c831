package hosttest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"go/types"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/fake"
)

// Go-source builds on the fake engine. The Host's builder runs unchanged:
// it asks its go command for the toolchain, makes the build sandbox's
// image, warms the shared cache and runs `go build` as a job in the
// sandbox. Here the go command is a small script (fakeGo) and the job is
// goBuild, a Program of the fake engine: it checks main.go as a compiler
// would (syntax, and types when it imports nothing), and writes a
// placeholder binary naming the fake Program that runs in its place
// (the marker line "//hosttest:program <name>"). When the engine builds
// the image, dispatch reads that name from the binary and makes the
// image run the Program. A source without a marker runs the engine's
// default Program, as a Dockerfile program does.

// programMarker starts the line of main.go that names a fake Program.
const programMarker = "//hosttest:program "

// binaryMagic starts a placeholder binary: an ELF header's first bytes
// (the builder checks them), then what follows names the Program.
const binaryMagic = "\x7fELF hosttest placeholder binary; program: "

// fakeGoScript answers the builder's two uses of the Host's go command:
// `go env GOVERSION GOROOT` (the toolchain: this test binary's version,
// and an empty folder mounted into the sandbox as GOROOT), and
// `go build ... -o FILE` of the sandbox's cache helper (a placeholder
// file: the sandbox's jobs are goBuild, which needs no helper).
const fakeGoScript = `#!/bin/sh
# hosttest: the Host's go command on the fake engine (see gobuild.go).
case "$1" in
env)
	printf '%%s\n%%s\n' %q %q
	;;
build)
	out=
	while [ $# -gt 0 ]; do
		if [ "$1" = -o ]; then out=$2; fi
		shift
	done
	[ -n "$out" ] || { echo "hosttest fake go: build without -o" >&2; exit 2; }
	echo "hosttest: placeholder for the build sandbox's cache helper" >"$out"
	;;
*)
	echo "hosttest fake go: unsupported command: $*" >&2
	exit 2
	;;
esac
`

// fakeGo writes the Host's go command for the fake engine into dir and
// returns its path.
func fakeGo(dir string) (string, error) {
	goroot := filepath.Join(dir, "goroot")
	if err := os.Mkdir(goroot, 0o755); err != nil {
		return "", err
	}
	version, _, _ := strings.Cut(runtime.Version(), " ") // "go1.26.8" (a devel toolchain says more)
	bin := filepath.Join(dir, "go")
	if err := os.WriteFile(bin, []byte(fmt.Sprintf(fakeGoScript, version, goroot)), 0o755); err != nil {
		return "", err
	}
	return bin, nil
}

// goBuild is the build sandbox's `go build` on the fake engine (the
// engine's Job): of a program, it checks /in/src/main.go and writes the
// placeholder binary to the -o path; the Host's warm-up (-o /dev/null)
// builds nothing. Compile errors are printed as the go command prints
// them ("./main.go:3:15: undefined: nope") and exit with status 1.
func goBuild(ctx context.Context, p *fake.Process) int {
	args := p.Args()
	if len(args) < 2 || args[1] != "build" {
		fmt.Fprintf(p.Stderr(), "hosttest fake go: unsupported command %q\n", args)
		return 2
	}
	out := ""
	for i := 2; i+1 < len(args); i++ {
		if args[i] == "-o" {
			out = args[i+1]
		}
	}
	if out == "" {
		fmt.Fprintln(p.Stderr(), "hosttest fake go: build without -o")
		return 2
	}
	if out == "/dev/null" {
		return 0 // the warm-up: a cache to fill, which the fake has not
	}
	src, err := p.ReadFile("/in/src/main.go")
	if err != nil {
		fmt.Fprintf(p.Stderr(), "no Go files in /in/src: %v\n", err)
		return 1
	}
	name, errs := compile(src)
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintf(p.Stderr(), "./%s\n", e)
		}
		return 1
	}
	if err := p.WriteFile(out, []byte(binaryMagic+name+"\n"), 0o755); err != nil {
		fmt.Fprintf(p.Stderr(), "go: writing %s: %v\n", out, err)
		return 1
	}
	return 0
}

// compile checks main.go and returns the fake Program its marker names
// ("" without one), or the errors a compiler would report. Types are
// checked only when the file imports nothing: the fake has no packages to
// import from.
func compile(src []byte) (string, []string) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "main.go", src, parser.ParseComments)
	if err != nil {
		var list scanner.ErrorList
		if errors.As(err, &list) {
			out := make([]string, 0, len(list))
			for _, e := range list {
				out = append(out, e.Error())
			}
			return "", out
		}
		return "", []string{err.Error()}
	}
	if len(f.Imports) == 0 {
		var out []string
		conf := types.Config{Error: func(err error) { out = append(out, err.Error()) }}
		conf.Check("main", fset, []*ast.File{f}, nil)
		if len(out) > 0 {
			return "", out
		}
	}
	name := ""
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), programMarker); ok {
			name = strings.TrimSpace(rest)
		}
	}
	if _, ok := fakePrograms[name]; name != "" && !ok {
		return "", []string{fmt.Sprintf("main.go: hosttest knows no fake program %q", name)}
	}
	return name, nil
}

// dispatch runs when the fake engine builds an image (Hooks.Build): if its
// context holds a placeholder binary of goBuild's, the image (by its tag)
// runs the Program the binary names.
func (f *Fake) dispatch(spec driver.ImageSpec) error {
	if spec.Tag == "" {
		return nil
	}
	return filepath.WalkDir(spec.ContextDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		file, err := os.Open(path)
		if err != nil {
			return err
		}
		defer file.Close()
		head := make([]byte, len(binaryMagic)+64)
		n, err := io.ReadFull(file, head)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return err
		}
		f.dispatchBinary(spec.Tag, head[:n])
		return nil
	})
}

// dispatchBinary makes the image tag run the Program a placeholder binary
// of goBuild's names; other content changes nothing.
func (f *Fake) dispatchBinary(tag string, content []byte) {
	rest, ok := strings.CutPrefix(string(content), binaryMagic)
	if !ok {
		return
	}
	name, _, _ := strings.Cut(rest, "\n")
	if p, ok := fakePrograms[name]; ok {
		f.Driver.SetProgram(tag, p)
	}
}
