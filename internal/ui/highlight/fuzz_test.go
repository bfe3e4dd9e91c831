package highlight

import (
	"strings"
	"testing"
)

func FuzzFile(f *testing.F) {
	for _, src := range hostileSources() {
		if len(src) < 4096 {
			f.Add("main.go", src)
			f.Add("Dockerfile", src)
		}
	}
	f.Add("go.mod", []byte("module x\nrequire y v1.0.0 // c\n"))
	f.Add("Dockerfile", []byte("FROM a AS b\nRUN --x=1 $A ${B} \"c\" 'd' \\\n  e\n"))
	f.Add("x.go", []byte("/*"))
	f.Add("x.go", []byte("`"))
	f.Fuzz(func(t *testing.T, name string, src []byte) {
		markup := string(File(name, src))
		checkMarkup(t, markup)
		if got, want := text(markup), shown(src); got != want {
			t.Fatalf("text shown %q, want %q", got, want)
		}
		if strings.Count(markup, "<span") != strings.Count(markup, "</span>") {
			t.Fatalf("unbalanced spans")
		}
	})
}
