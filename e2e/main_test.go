package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// hershyBin is the hershy command built for this run; every test's Host is
// this binary running `hershy serve`, as a user would start it.
var hershyBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // the tests skip themselves
	}
	dir, err := os.MkdirTemp("", "hershy-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hershyBin = filepath.Join(dir, "hershy")
	build := exec.Command("go", "build", "-o", hershyBin, "github.com/hershyorg/hershy/cmd/hershy")
	// Static, as a Host on a cluster needs itself to be: its own binary is
	// the state helper its helper Pods run (internal/statearchive).
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building hershy: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
