package highlight

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// hlToken is a highlighted token as the markup shows it.
type hlToken struct{ class, text string }

func (t hlToken) String() string { return t.class + ":" + t.text }

var tokenRE = regexp.MustCompile(`<span class="(hl-(?:kw|str|com|num|bi|var|flag|err))">([^<]*)</span>`)

// tokens lists the highlighted tokens of markup, their text unescaped.
func tokens(markup string) []hlToken {
	var out []hlToken
	for _, m := range tokenRE.FindAllStringSubmatch(markup, -1) {
		out = append(out, hlToken{m[1], html.UnescapeString(m[2])})
	}
	return out
}

// fixedTags are the tags the markup may hold besides a line's opening
// (see lineTag); anything else that starts with "<" came from the input
// unescaped.
var fixedTags = []string{
	`<pre class="hl">`, `<code>`, `</code>`, `</pre>`, `</a>`, `</span>`,
	`<span class="hl-kw">`, `<span class="hl-str">`, `<span class="hl-com">`, `<span class="hl-num">`,
	`<span class="hl-bi">`, `<span class="hl-var">`, `<span class="hl-flag">`, `<span class="hl-err">`,
}

// lineTag is the opening of line n.
func lineTag(n int) string {
	return fmt.Sprintf(`<span class="hl-line" id="L%d"><a class="hl-ln" href="#L%d" data-line="%d" aria-hidden="true" tabindex="-1">`, n, n, n)
}

// checkMarkup fails the test unless every "<" of markup starts an allowed
// tag, the lines are numbered 1, 2, 3... with one anchor each, the markup
// is valid UTF-8 with no NUL, and it is well-formed (a strict XML parser
// reads it). It takes time linear in the markup's length.
func checkMarkup(t testing.TB, markup string) {
	t.Helper()
	line := 0
	for i := 0; i < len(markup); {
		j := strings.IndexByte(markup[i:], '<')
		if j < 0 {
			break
		}
		i += j
		rest := markup[i:]
		n := 0
		for _, tag := range fixedTags {
			if strings.HasPrefix(rest, tag) {
				n = len(tag)
				break
			}
		}
		if n == 0 && strings.HasPrefix(rest, `<span class="hl-line"`) {
			line++
			if want := lineTag(line); strings.HasPrefix(rest, want) {
				n = len(want)
			} else {
				t.Fatalf("line %d is opened with %.120q", line, rest)
			}
		}
		if n == 0 {
			t.Fatalf("unescaped < at byte %d: %.80q", i, rest)
		}
		i += n
	}
	if !utf8.ValidString(markup) || strings.ContainsRune(markup, 0) {
		t.Fatalf("markup is not valid UTF-8 or holds NUL")
	}
	if opened, closed := strings.Count(markup, "<span"), strings.Count(markup, "</span>"); opened != closed {
		t.Fatalf("%d spans opened, %d closed", opened, closed)
	}
	if len(markup) > 1<<20 {
		return // the strict parse below is slow under the race detector; small inputs cover it
	}
	dec := xml.NewDecoder(strings.NewReader(markup))
	dec.Strict = true
	for {
		_, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("markup is not well-formed: %v", err)
		}
	}
}

// text is what a reader sees: the markup without its tags, unescaped.
// (The markup's own tags hold no ">" in their attributes.)
func text(markup string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(markup, '<')
		if i < 0 {
			b.WriteString(markup)
			break
		}
		b.WriteString(markup[:i])
		j := strings.IndexByte(markup[i:], '>')
		if j < 0 {
			break
		}
		markup = markup[i+j+1:]
	}
	return html.UnescapeString(b.String())
}

// shown is what the viewer should show for src, written independently of
// the renderer: CRLF line ends become LF, the last line gets a newline,
// invalid UTF-8, NUL, C1 controls and noncharacters become U+FFFD, and
// other controls but tab become their control pictures.
func shown(src []byte) string {
	s := bytes.ReplaceAll(src, []byte("\r\n"), []byte("\n"))
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRune(s)
		s = s[size:]
		switch {
		case r == '\n' || r == '\t':
		case r == 0 || r == utf8.RuneError || (r >= 0x80 && r < 0xa0) || r == 0xfffe || r == 0xffff:
			r = utf8.RuneError
		case r < 0x20:
			r += 0x2400
		case r == 0x7f:
			r = 0x2421
		}
		b.WriteRune(r)
	}
	out := b.String()
	if out != "" && !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	return out
}

func TestGo(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // class:text of each highlighted token
	}{
		{"keywords, builtins, literals", "package main\n\nfunc f() int { return len(\"a<b\") + 0x1F }\n",
			[]string{"hl-kw:package", "hl-kw:func", "hl-bi:int", "hl-kw:return", "hl-bi:len", `hl-str:"a<b"`, "hl-num:0x1F"}},
		{"comments", "// line </script>\nx := 1 /* block\nspanning */ + 'c'\n",
			[]string{"hl-com:// line </script>", "hl-num:1", "hl-com:/* block", "hl-com:spanning */", "hl-str:'c'"}},
		{"a raw string across lines", "s := `a\n<b>\nc`\n", []string{"hl-str:`a", "hl-str:<b>", "hl-str:c`"}},
		{"a raw string with CRLF", "s := `a\r\nb`\r\nvar x\r\n", []string{"hl-str:`a", "hl-str:b`", "hl-kw:var"}},
		{"unterminated string", "x := \"abc\ny := nil\n", []string{`hl-str:"abc`, "hl-bi:nil"}},
		{"unterminated comment", "x := 1 /* no end\n<script>", []string{"hl-num:1", "hl-com:/* no end", "hl-com:<script>"}},
		{"unterminated raw string", "x := `never", []string{"hl-str:`never"}},
		{"illegal characters", "a @ b # \x00 c", []string{"hl-err:@", "hl-err:#", "hl-err:\ufffd"}},
		{"invalid UTF-8", "x := \"\xff\" \xfe", []string{"hl-str:\"\ufffd\"", "hl-err:\ufffd"}},
		{"floats and imaginary", "1.5e3 2i .5", []string{"hl-num:1.5e3", "hl-num:2i", "hl-num:.5"}},
		{"a user's identifier is plain", "lenient := true", []string{"hl-bi:true"}},
		{"a comment on the last line", "x // end", []string{"hl-com:// end"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			markup := string(Go([]byte(tt.src)))
			checkMarkup(t, markup)
			var got []string
			for _, tok := range tokens(markup) {
				got = append(got, tok.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("tokens\n got %q\nwant %q", got, tt.want)
			}
			if got, want := text(markup), shown([]byte(tt.src)); got != want {
				t.Errorf("text %q, want %q", got, want)
			}
		})
	}
}

func TestDockerfile(t *testing.T) {
	src := "# syntax=docker/dockerfile:1\n" +
		"FROM scratch AS base\n" +
		"from base\n" +
		"COPY --chown=65532:65532 app /app\n" +
		"ENV GREETING=\"hello <you>\" HOME=$HOME2 X=${Y}\n" +
		"RUN echo one && \\\n" +
		"    # a comment inside\n" +
		"    FROM is an argument here\n" +
		"ONBUILD run make\n" +
		"NOTANINSTRUCTION x\n" +
		"CMD ['/app']\r\n"
	want := []string{
		"hl-com:# syntax=docker/dockerfile:1",
		"hl-kw:FROM", "hl-kw:AS",
		"hl-kw:from",
		"hl-kw:COPY", "hl-flag:--chown",
		"hl-kw:ENV", `hl-str:"hello <you>"`, "hl-var:$HOME2", "hl-var:${Y}",
		"hl-kw:RUN",
		"hl-com:# a comment inside",
		"hl-kw:ONBUILD", "hl-kw:run",
		"hl-kw:CMD", "hl-str:'/app'",
	}
	markup := string(Dockerfile([]byte(src)))
	checkMarkup(t, markup)
	var got []string
	for _, tok := range tokens(markup) {
		got = append(got, tok.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("tokens\n got %q\nwant %q", got, want)
	}
	if text(markup) != shown([]byte(src)) {
		t.Errorf("text %q, want %q", text(markup), shown([]byte(src)))
	}
}

func TestGoMod(t *testing.T) {
	src := "module example.com/bot // the bot\n\ngo 1.25\n\nrequire (\n\tgolang.org/x/mod v0.43.0 // indirect\n\ttool.example/t v1.0.0\n\texample.com/y v1.2.3-pre+incompatible\n)\nreplace example.com/z => \"../z\"\n"
	want := []string{
		"hl-kw:module", "hl-com:// the bot",
		"hl-kw:go",
		"hl-kw:require",
		"hl-num:v0.43.0", "hl-com:// indirect",
		"hl-num:v1.0.0",
		"hl-num:v1.2.3-pre+incompatible",
		"hl-kw:replace", `hl-str:"../z"`,
	}
	markup := string(GoMod([]byte(src)))
	checkMarkup(t, markup)
	var got []string
	for _, tok := range tokens(markup) {
		got = append(got, tok.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("tokens\n got %q\nwant %q", got, want)
	}
}

func TestLines(t *testing.T) {
	tests := []struct {
		src   string
		lines int
	}{
		{"", 0},
		{"\n", 1},
		{"a", 1},
		{"a\n", 1},
		{"a\nb", 2},
		{"a\r\nb\r\n", 2},
		{"a\rb\n", 1}, // a lone CR is shown, not a line end
		{"\n\n\n", 3},
		{strings.Repeat("x\n", 1000), 1000},
	}
	for _, tt := range tests {
		for _, f := range []func([]byte) string{
			func(b []byte) string { return string(Go(b)) },
			func(b []byte) string { return string(Text(b)) },
			func(b []byte) string { return string(Dockerfile(b)) },
			func(b []byte) string { return string(GoMod(b)) },
		} {
			markup := f([]byte(tt.src))
			checkMarkup(t, markup)
			if got := strings.Count(markup, `class="hl-line"`); got != tt.lines {
				t.Errorf("%q: %d lines, want %d", tt.src, got, tt.lines)
			}
			if text(markup) != shown([]byte(tt.src)) {
				t.Errorf("%q: text %q, want %q", tt.src, text(markup), shown([]byte(tt.src)))
			}
		}
	}
	if m := string(Text([]byte("a\nb\nc\n"))); !strings.Contains(m, `id="L3"`) || !strings.Contains(m, `href="#L3"`) || strings.Contains(m, `id="L4"`) {
		t.Errorf("line anchors: %s", m)
	}
}

// hostileSources are inputs meant to break out of the <pre>, confuse the
// scanner, or take long.
func hostileSources() map[string][]byte {
	return map[string][]byte{
		"script":           []byte("</code></pre><script>alert(1)</script>"),
		"script in string": []byte("package x\nvar s = \"</script><img src=x onerror=alert(1)>\"\n"),
		"attribute quotes": []byte(`"><a href='javascript:alert(1)'>x</a>`),
		"entities":         []byte("&lt;script&gt; &amp; &#60;"),
		"NUL bytes":        []byte("package x\x00\x00\nfunc\x00 f() {}\n"),
		"invalid UTF-8":    {0xff, 0xfe, 0xc3, 0x28, '<', 0xe2, 0x82, '\n', 0xed, 0xa0, 0x80},
		"controls":         []byte("a\x1b[31mred\x07\x7f\u0085\ufeff\ufffe\r"),
		"unterminated":     []byte("x := \"abc\n y := `raw\n /* comment <b>"),
		"lone CRs":         []byte("a\rb\r\rc"),
		"BOM first":        []byte("\ufeffpackage x\n"),
		"long line":        bytes.Repeat([]byte("<a>\""), 1<<18),
		"1 MiB of Go":      bytes.Repeat([]byte("func f() { x := \"<s>\" /* c */ }\n"), (1<<20)/32),
		"64 KiB of lines":  bytes.Repeat([]byte("\n"), 1<<16),
		"deep nesting":     bytes.Repeat([]byte("({["), 1<<16),
	}
}

func TestHostileInput(t *testing.T) {
	for name, src := range hostileSources() {
		for _, file := range []string{"main.go", "Dockerfile", "go.mod", "notes.txt"} {
			markup := string(File(file, src))
			checkMarkup(t, markup)
			if got, want := text(markup), shown(src); got != want {
				t.Errorf("%s as %s: the text shown differs from the source (%d bytes vs %d)", name, file, len(got), len(want))
			}
			if n := strings.Count(markup, "&lt;"); n < bytes.Count(src, []byte("<")) {
				t.Errorf("%s as %s: %d '<' in the source, %d escaped", name, file, bytes.Count(src, []byte("<")), n)
			}
		}
	}
}

func TestLanguage(t *testing.T) {
	tests := map[string]string{
		"main.go": "go", "cmd/bot/Main.GO": "go", "go.mod": "gomod", "sub/go.work": "gomod",
		"Dockerfile": "dockerfile", "dockerfile": "dockerfile", "Dockerfile.dev": "dockerfile",
		"build.dockerfile": "dockerfile", `win\Dockerfile`: "dockerfile", "go.sum": "text",
		"README.md": "text", "": "text", "go.mod.bak": "text",
	}
	for name, want := range tests {
		if got := Language(name); got != want {
			t.Errorf("Language(%q) = %q, want %q", name, got, want)
		}
	}
}
