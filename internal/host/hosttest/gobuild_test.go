package hosttest

import (
	"strings"
	"testing"
)

// TestCompile: the fake go build refuses what a compiler refuses (syntax
// errors; type errors in a file that imports nothing) with the compiler's
// file:line:column, and reads the marker that names a fake Program.
func TestCompile(t *testing.T) {
	for _, c := range []struct {
		name, src string
		program   string // the marker's Program ("" for none)
		err       string // "" when it compiles
	}{
		{"empty main", "package main\n\nfunc main() {}\n", "", ""},
		{"undefined name", "package main\n\nfunc main() { nope }\n", "", "main.go:3:15: undefined: nope"},
		{"syntax error", "package main\n\nfunc main() {\n", "", "main.go:3:15: expected '}'"},
		{"imports are not type-checked", "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Nope() }\n", "", ""},
		{"the counter's source", CounterSource(3)["main.go"], "counter", ""},
		{"the seed's source", SeedSource()["main.go"], "seed", ""},
		{"an unknown program", "package main\n\nfunc main() {}\n\n//hosttest:program nobody\n", "", `no fake program "nobody"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			name, errs := compile([]byte(c.src))
			got := strings.Join(errs, "\n")
			if c.err == "" && got != "" || c.err != "" && !strings.Contains(got, c.err) || name != c.program {
				t.Errorf("compile: program %q, errors %q; want %q, an error with %q", name, got, c.program, c.err)
			}
		})
	}
}
