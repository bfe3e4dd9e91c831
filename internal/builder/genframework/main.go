// Command genframework writes the hersh framework's source into the archive
// the Host embeds. It runs from `go generate ./internal/build`:
//
//	go run ./genframework -src ../../hersh -out hershsrc.zip
//
// The archive only changes when the framework's files do (see fwzip.Zip),
// so regenerating an up-to-date archive leaves it byte for byte the same.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hershyorg/hershy/internal/builder/internal/fwzip"
)

func main() {
	src := flag.String("src", "../../hersh", "the hersh module's folder")
	out := flag.String("out", "hershsrc.zip", "the archive to write")
	flag.Parse()
	if err := run(*src, *out); err != nil {
		fmt.Fprintln(os.Stderr, "genframework:", err)
		os.Exit(1)
	}
}

func run(src, out string) error {
	files, err := fwzip.Collect(src)
	if err != nil {
		return err
	}
	data, err := fwzip.Zip(files)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(out); err == nil && bytes.Equal(old, data) {
		fmt.Printf("genframework: %s is up to date (%d files, %s)\n", out, len(files), fwzip.Hash(files))
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".hershsrc-*.zip")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	fmt.Printf("genframework: wrote %s (%d files, %d bytes, %s)\n", out, len(files), len(data), fwzip.Hash(files))
	return nil
}
