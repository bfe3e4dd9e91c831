package highlight

import (
	"bytes"
	"go/scanner"
	"go/token"
	"html/template"
	"unicode/utf8"
)

// builtins are Go's predeclared identifiers (the universe scope): types,
// constants, nil and the built-in functions.
var builtins = map[string]bool{
	"any": true, "bool": true, "byte": true, "comparable": true, "complex64": true, "complex128": true,
	"error": true, "float32": true, "float64": true, "int": true, "int8": true, "int16": true,
	"int32": true, "int64": true, "rune": true, "string": true, "uint": true, "uint8": true,
	"uint16": true, "uint32": true, "uint64": true, "uintptr": true,
	"true": true, "false": true, "iota": true, "nil": true,
	"append": true, "cap": true, "clear": true, "close": true, "complex": true, "copy": true,
	"delete": true, "imag": true, "len": true, "make": true, "max": true, "min": true, "new": true,
	"panic": true, "print": true, "println": true, "real": true, "recover": true,
}

// Go renders Go source: keywords, literals, comments and predeclared
// identifiers are highlighted as go/scanner reads them. Source that does
// not scan (a stray byte, an unterminated string or comment) is still
// shown whole: the scanner goes on after an error, the illegal character
// gets the Invalid class, and whatever no token covers is plain text.
func Go(src []byte) template.HTML {
	return render(src, goSpans(src))
}

// goSpans scans src and returns its tokens' spans. A token's extent is
// taken from the source, not from the literal the scanner returns: the
// scanner drops carriage returns from comments and raw strings, and
// reports an invalid byte as the three-byte U+FFFD.
func goSpans(src []byte) []span {
	fset := token.NewFileSet()
	file := fset.AddFile("", fset.Base(), len(src))
	var s scanner.Scanner
	s.Init(file, src, func(token.Position, string) {}, scanner.ScanComments)

	var spans []span
	prevEnd := 0
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		start := file.Offset(pos)
		if start < prevEnd || start >= len(src) {
			continue // an inserted semicolon, or a position already covered
		}
		class, end := "", start
		switch {
		case tok.IsKeyword():
			class, end = Keyword, start+len(lit)
		case tok == token.IDENT && builtins[lit]:
			class, end = Builtin, start+len(lit)
		case tok == token.INT || tok == token.FLOAT || tok == token.IMAG:
			class, end = Number, start+len(lit)
		case tok == token.CHAR:
			class, end = String, start+len(lit)
		case tok == token.STRING:
			class = String
			if src[start] == '`' {
				end = closing(src, start+1, "`")
			} else {
				end = start + len(lit)
			}
		case tok == token.COMMENT:
			class = Comment
			if bytes.HasPrefix(src[start:], []byte("/*")) {
				end = closing(src, start+2, "*/")
			} else {
				end = start + max(0, bytes.IndexByte(src[start:], '\n'))
				if end == start {
					end = len(src) // the last line has no newline
				}
			}
		case tok == token.ILLEGAL:
			_, size := utf8.DecodeRune(src[start:])
			class, end = Invalid, start+max(size, 1)
		}
		if class == "" || end <= start || end > len(src) {
			continue
		}
		// A literal the scanner returned must be the source itself; if it
		// is not (a case not foreseen above), leave the token plain rather
		// than mark bytes it does not cover.
		if tok != token.COMMENT && tok != token.STRING && tok != token.ILLEGAL && !bytes.Equal(src[start:end], []byte(lit)) {
			continue
		}
		spans = append(spans, span{start, end, class})
		prevEnd = end
	}
	return spans
}

// closing returns the offset just past the first occurrence of delim at or
// after from, or len(src) when there is none (an unterminated comment or
// raw string runs to the end of the file, as the compiler reads it).
func closing(src []byte, from int, delim string) int {
	if from > len(src) {
		return len(src)
	}
	if i := bytes.Index(src[from:], []byte(delim)); i >= 0 {
		return from + i + len(delim)
	}
	return len(src)
}
