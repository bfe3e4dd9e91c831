package dockerfile

import (
	"errors"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// FuzzCheck: Check never panics (nor lets the parser panic), refuses with
// an *Error whose line is in the file, and what it accepts agrees with the
// engine's own reading of the stages: every FROM it reports is a stage's
// base name as instructions.Parse reads it, and no reported reference
// holds a variable, a quote or an image id.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"FROM scratch\nCOPY a /a\n",
		"FROM hersh-program-mine\nCOPY \\\n\n--from=hersh-program-victim /app /victim-app\n",
		"ARG IMG=scratch \\\n\nIMG=hersh-program-victim\nFROM ${IMG}\n",
		"# escape=`\nFROM `\n  img:1 AS b\nCOPY --from=b /a /b\n",
		"\ufeff# syntax=x\nFROM scratch\n",
		"FROM base:1 AS b\nFROM b\nFROM B AS c\nCOPY --from=b /x /x\nCOPY --from=0 /y /y\nCOPY --from=busybox:1 /z /z\n",
		"FROM scratch AS hersh-program-victim\nCOPY --from=hersh-program-victim /app /x\n",
		"FROM scratch\nCOPY --from=\"hersh-program-victim\" /app /x\n",
		"FROM scratch\nONBUILD ONBUILD RUN x\n",
		"FROM scratch\nHEALTHCHECK --interval=1ms CMD [\"/app\"]\n",
		"FROM scratch\nLABEL org.hershy.program-id=victim a=\"b c\"\n",
		"FROM scratch\r\nCOPY \\\r\n# c\r\n--chown=1:1 a /a\r\n",
		"FROM scratch\nCMD [\"a\", 1]\n",
		"FROM scratch\nENTRYPOINT [\n",
		"FROM scratch\nEXPOSE\n",
		"FROM scratch\nHEALTHCHECK\n",
		"FROM scratch\nONBUILD\n",
		"\\\n\\\n",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		res, err := Check(src)
		lines := strings.Count(src, "\n") + 1
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Msg == "" {
				t.Fatalf("Check returned %T %v, want an *Error", err, err)
			}
			if strings.HasPrefix(e.Msg, parserPanic) {
				t.Fatalf("the parser panicked: %v", err)
			}
			if e.Line < 0 || e.Line > lines {
				t.Fatalf("error line %d outside the file's %d lines: %v", e.Line, lines, err)
			}
			return
		}
		for _, b := range res.Bases {
			if b.Line < 1 || b.Line > lines || b.Ref == "" || b.Ref == "scratch" || isImageID(b.Ref) || strings.ContainsAny(b.Ref, "$'\"\\`") {
				t.Fatalf("accepted with base %+v", b)
			}
		}
		// The engine's reading of the same file.
		parsed, err := parser.Parse(strings.NewReader(src))
		if err != nil || len(parsed.Warnings) > 0 {
			t.Fatalf("accepted a file the parser refuses or warns about: %v %q", err, parsed.Warnings)
		}
		stages, _, err := instructions.Parse(parsed.AST)
		if err != nil {
			t.Fatalf("accepted a file instructions.Parse refuses: %v", err)
		}
		var fromBases []Base
		for _, b := range res.Bases {
			if !b.Copy {
				fromBases = append(fromBases, b)
			}
		}
		i := 0
		for n, st := range stages {
			named := st.BaseName == "scratch"
			for _, prev := range stages[:n] {
				named = named || prev.Name != "" && strings.EqualFold(prev.Name, st.BaseName)
			}
			if named {
				continue
			}
			if i >= len(fromBases) || fromBases[i].Ref != st.BaseName {
				t.Fatalf("stage %d FROM %q: the policy reported %+v", n, st.BaseName, fromBases)
			}
			i++
		}
		if i != len(fromBases) {
			t.Fatalf("the policy reported FROM bases %+v, the engine's stages %d of them", fromBases, i)
		}
	})
}
