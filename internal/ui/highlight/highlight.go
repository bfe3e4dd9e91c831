// Package highlight renders source files as HTML for the dashboard's
// source viewer: Go highlighted with the standard library's own scanner
// (go/scanner), Dockerfiles and go.mod files with small line-based
// highlighters, anything else as plain text. Every line is numbered and
// has an anchor (#L12), so a line can be linked to.
//
// The input is a user's upload and is treated as hostile: every byte of it
// is escaped, invalid UTF-8 and NUL bytes become U+FFFD, other control
// characters become their visible Unicode pictures (␛), and no input makes
// a function panic. The work is linear in the size of the input (one scan,
// one pass of output), so a large file costs time in proportion, never
// more; bounding the size shown is the caller's choice.
//
// The markup is
//
//	<pre class="hl"><code>
//	<span class="hl-line" id="L1"><a class="hl-ln" href="#L1" data-line="1" ...></a>...</span>
//	...</code></pre>
//
// with one line per source line and tokens in <span class="hl-kw"> and
// friends (see [Stylesheet]). The line numbers are drawn by CSS from
// data-line, so copying the code copies no numbers.
package highlight

import (
	"html/template"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Token classes: the CSS classes a token's <span> gets.
const (
	Keyword  = "hl-kw"   // Go keywords, Dockerfile instructions, go.mod verbs
	String   = "hl-str"  // string and rune literals, quoted words
	Comment  = "hl-com"  // comments
	Number   = "hl-num"  // numeric literals, module versions
	Builtin  = "hl-bi"   // Go's predeclared identifiers: len, string, nil, ...
	Variable = "hl-var"  // Dockerfile $VAR and ${VAR}
	Flag     = "hl-flag" // Dockerfile --flags
	Invalid  = "hl-err"  // what the Go scanner found illegal
)

// Stylesheet is a default style for the classes, with line numbers drawn
// from data-line and a highlighted line when its anchor is the target. A
// page may use its own.
const Stylesheet = `.hl{margin:0;padding:.5em 0;overflow:auto;line-height:1.45;tab-size:4;font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.hl-line{display:inline-block;min-width:100%;box-sizing:border-box;padding-right:1em}
.hl-line:target{background:rgba(250,204,21,.25)}
.hl-ln{display:inline-block;width:4.5em;padding-right:1em;text-align:right;color:inherit;opacity:.45;text-decoration:none;user-select:none}
.hl-ln::before{content:attr(data-line)}
.hl-kw{color:#a626a4;font-weight:600}
.hl-str{color:#50a14f}
.hl-com{color:#8a8f98;font-style:italic}
.hl-num{color:#b76b01}
.hl-bi{color:#0184bc}
.hl-var{color:#e45649}
.hl-flag{color:#986801}
.hl-err{color:#fff;background:#e45649}
@media (prefers-color-scheme:dark){.hl-kw{color:#c678dd}.hl-str{color:#98c379}.hl-com{color:#7f848e}.hl-num{color:#d19a66}.hl-bi{color:#56b6c2}.hl-var{color:#e06c75}.hl-flag{color:#e5c07b}}
`

// span marks src[start:end] as a token of a class.
type span struct {
	start, end int
	class      string
}

// File renders src as the language its file name says: Go for *.go,
// go.mod and go.work files, Dockerfiles (Dockerfile, Dockerfile.*,
// *.dockerfile), and plain text for anything else.
func File(name string, src []byte) template.HTML {
	switch Language(name) {
	case "go":
		return Go(src)
	case "gomod":
		return GoMod(src)
	case "dockerfile":
		return Dockerfile(src)
	}
	return Text(src)
}

// Language is the language File renders a file name as: "go", "gomod",
// "dockerfile" or "text".
func Language(name string) string {
	base := strings.ToLower(path.Base(strings.ReplaceAll(name, `\`, "/")))
	switch {
	case strings.HasSuffix(base, ".go"):
		return "go"
	case base == "go.mod" || base == "go.work":
		return "gomod"
	case base == "dockerfile" || strings.HasPrefix(base, "dockerfile.") || strings.HasSuffix(base, ".dockerfile"):
		return "dockerfile"
	}
	return "text"
}

// Text renders src escaped and numbered, without highlighting.
func Text(src []byte) template.HTML {
	return render(src, nil)
}

// render writes src as numbered lines with the spans (sorted, not
// overlapping, within src) wrapped in their classes. A span that crosses a
// line end is closed at the end of the line and opened again on the next,
// so every line is a well-formed element of its own.
func render(src []byte, spans []span) template.HTML {
	var b strings.Builder
	b.Grow(len(src) + len(src)/8 + 64)
	b.WriteString(`<pre class="hl"><code>`)
	if len(src) == 0 {
		b.WriteString(`</code></pre>`)
		return template.HTML(b.String())
	}
	line := 0
	openLine := func() {
		line++
		n := strconv.Itoa(line)
		b.WriteString(`<span class="hl-line" id="L` + n + `"><a class="hl-ln" href="#L` + n + `" data-line="` + n + `" aria-hidden="true" tabindex="-1"></a>`)
	}
	openLine()
	si := 0      // the next span that has not ended
	inSpan := "" // the class of the span open in the markup, if any
	for i := 0; i < len(src); {
		for si < len(spans) && spans[si].end <= i {
			si++
		}
		want := ""
		end := len(src) // where the current run of one class ends
		if si < len(spans) {
			if spans[si].start <= i {
				want, end = spans[si].class, spans[si].end
			} else {
				end = spans[si].start
			}
		}
		if want != inSpan {
			if inSpan != "" {
				b.WriteString(`</span>`)
			}
			if want != "" {
				b.WriteString(`<span class="` + want + `">`)
			}
			inSpan = want
		}
		// Write up to the end of the run or the end of the line.
		for i < end {
			c := src[i]
			if c == '\n' {
				if inSpan != "" {
					b.WriteString(`</span>`)
				}
				b.WriteString("</span>\n")
				i++
				if i < len(src) {
					openLine()
					if inSpan != "" {
						b.WriteString(`<span class="` + inSpan + `">`)
					}
				} else {
					inSpan = ""
				}
				continue
			}
			if c == '\r' && i+1 < len(src) && src[i+1] == '\n' {
				i++ // the CR of a CRLF line end: dropped, the LF ends the line
				continue
			}
			i += writeEscaped(&b, src[i:end])
		}
	}
	if len(src) > 0 && src[len(src)-1] != '\n' {
		if inSpan != "" {
			b.WriteString(`</span>`)
		}
		b.WriteString("</span>\n")
	}
	b.WriteString(`</code></pre>`)
	return template.HTML(b.String())
}

// writeEscaped writes the first character of p (which does not start with
// a newline) as safe text, and returns how many bytes it took.
func writeEscaped(b *strings.Builder, p []byte) int {
	c := p[0]
	if c < utf8.RuneSelf {
		switch {
		case c == '<':
			b.WriteString("&lt;")
		case c == '>':
			b.WriteString("&gt;")
		case c == '&':
			b.WriteString("&amp;")
		case c == '"':
			b.WriteString("&#34;")
		case c == '\'':
			b.WriteString("&#39;")
		case c == 0:
			b.WriteRune(utf8.RuneError)
		case c == '\t':
			b.WriteByte(c)
		case c < 0x20:
			// A lone CR would end the line in the browser (HTML turns CR
			// into LF) and break the numbering; other controls are
			// invisible. Show each as its control picture (␍, ␛).
			b.WriteRune(0x2400 + rune(c))
		case c == 0x7f:
			b.WriteRune(0x2421) // ␡
		default:
			b.WriteByte(c)
		}
		return 1
	}
	r, size := utf8.DecodeRune(p)
	if r == utf8.RuneError || (r >= 0x80 && r < 0xa0) || r == 0xfffe || r == 0xffff {
		b.WriteRune(utf8.RuneError) // invalid UTF-8, a C1 control or a noncharacter
		return max(size, 1)
	}
	b.Write(p[:size])
	return size
}
