package highlight

import (
	"bytes"
	"html/template"
	"strings"
)

// dockerInstructions are the instructions of the Dockerfile reference, in
// upper case (the parser takes them in any case).
var dockerInstructions = map[string]bool{
	"ADD": true, "ARG": true, "CMD": true, "COPY": true, "ENTRYPOINT": true, "ENV": true,
	"EXPOSE": true, "FROM": true, "HEALTHCHECK": true, "LABEL": true, "MAINTAINER": true,
	"ONBUILD": true, "RUN": true, "SHELL": true, "STOPSIGNAL": true, "USER": true,
	"VOLUME": true, "WORKDIR": true,
}

// Dockerfile renders a Dockerfile: instructions, comments, quoted strings,
// $VAR and ${VAR}, and --flags. It reads line by line, as the Dockerfile
// parser does: a line ending in a backslash continues the instruction on
// the next line, whose first word is then no instruction. (A Dockerfile
// that changes the escape character with a parser directive is still
// shown whole, only highlighted as if it had not.)
func Dockerfile(src []byte) template.HTML {
	var spans []span
	continued := false
	forEachLine(src, func(start int, line []byte) {
		i := skipSpace(line, 0)
		if i < len(line) && line[i] == '#' {
			// A comment line, also inside a continued instruction.
			spans = append(spans, span{start + i, start + len(trimCR(line)), Comment})
			return
		}
		instruction := ""
		if !continued {
			w := wordEnd(line, i)
			if word := strings.ToUpper(string(line[i:w])); dockerInstructions[word] {
				spans = append(spans, span{start + i, start + w, Keyword})
				instruction, i = word, w
				// ONBUILD takes an instruction of its own.
				if word == "ONBUILD" {
					j := skipSpace(line, w)
					k := wordEnd(line, j)
					if next := strings.ToUpper(string(line[j:k])); dockerInstructions[next] {
						spans = append(spans, span{start + j, start + k, Keyword})
						instruction, i = next, k
					}
				}
			}
		}
		spans = append(spans, dockerArgs(start, line, i, instruction == "FROM")...)
		body := bytes.TrimRight(trimCR(line), " \t")
		continued = len(body) > 0 && body[len(body)-1] == '\\'
	})
	return render(src, spans)
}

// dockerArgs marks the strings, variables and flags of an instruction's
// arguments, line[i:] (line starting at offset start of the file), and the
// AS of a FROM line.
func dockerArgs(start int, line []byte, i int, from bool) []span {
	var spans []span
	for i < len(line) {
		c := line[i]
		switch {
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(line) && line[j] != c {
				if line[j] == '\\' && c == '"' && j+1 < len(line) {
					j++
				}
				j++
			}
			j = min(j+1, len(line))
			spans = append(spans, span{start + i, start + j, String})
			i = j
		case c == '$':
			j := i + 1
			if j < len(line) && line[j] == '{' {
				for j < len(line) && line[j] != '}' {
					j++
				}
				j = min(j+1, len(line))
			} else {
				for j < len(line) && isWordByte(line[j]) {
					j++
				}
			}
			if j > i+1 {
				spans = append(spans, span{start + i, start + j, Variable})
			}
			i = j
		case c == '-' && i+1 < len(line) && line[i+1] == '-' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			j := i + 2
			for j < len(line) && (isWordByte(line[j]) || line[j] == '-') {
				j++
			}
			spans = append(spans, span{start + i, start + j, Flag})
			i = j
		case from && (c == 'A' || c == 'a') && i+2 <= len(line) && strings.EqualFold(string(line[i:i+2]), "as") &&
			i > 0 && (line[i-1] == ' ' || line[i-1] == '\t') && (i+2 == len(line) || line[i+2] == ' ' || line[i+2] == '\t' || line[i+2] == '\r'):
			// FROM image AS stage
			spans = append(spans, span{start + i, start + i + 2, Keyword})
			i += 2
		default:
			i++
		}
	}
	return spans
}

// goModVerbs are the directives of go.mod and go.work files.
var goModVerbs = map[string]bool{
	"module": true, "go": true, "toolchain": true, "godebug": true, "require": true,
	"replace": true, "exclude": true, "retract": true, "tool": true, "ignore": true, "use": true,
}

// GoMod renders a go.mod or go.work file: directives, comments, quoted
// strings and versions (v1.2.3).
func GoMod(src []byte) template.HTML {
	var spans []span
	forEachLine(src, func(start int, line []byte) {
		i := skipSpace(line, 0)
		w := wordEnd(line, i)
		// A directive is a whole word: "tool" but not "tool.example/x".
		if goModVerbs[string(line[i:w])] && (w == len(line) || line[w] == ' ' || line[w] == '\t' || line[w] == '(' || line[w] == '\r') {
			spans = append(spans, span{start + i, start + w, Keyword})
			i = w
		}
		for i < len(line) {
			switch c := line[i]; {
			case c == '/' && i+1 < len(line) && line[i+1] == '/':
				spans = append(spans, span{start + i, start + len(trimCR(line)), Comment})
				return
			case c == '"' || c == '`':
				j := i + 1
				for j < len(line) && line[j] != c {
					if c == '"' && line[j] == '\\' && j+1 < len(line) {
						j++
					}
					j++
				}
				j = min(j+1, len(line))
				spans = append(spans, span{start + i, start + j, String})
				i = j
			case c == 'v' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') && i+1 < len(line) && line[i+1] >= '0' && line[i+1] <= '9':
				j := i + 1
				for j < len(line) && line[j] != ' ' && line[j] != '\t' && line[j] != '\r' && line[j] != '/' {
					j++
				}
				spans = append(spans, span{start + i, start + j, Number})
				i = j
			default:
				i++
			}
		}
	})
	return render(src, spans)
}

// forEachLine calls f with each line of src (without its newline) and the
// offset where it starts.
func forEachLine(src []byte, f func(start int, line []byte)) {
	for start := 0; start < len(src); {
		end := bytes.IndexByte(src[start:], '\n')
		if end < 0 {
			end = len(src) - start
		}
		f(start, src[start:start+end])
		start += end + 1
	}
}

// trimCR drops the CR of a CRLF line end.
func trimCR(line []byte) []byte {
	return bytes.TrimSuffix(line, []byte("\r"))
}

// skipSpace returns the offset of the first byte at or after i that is not
// a space or a tab.
func skipSpace(line []byte, i int) int {
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	return i
}

// wordEnd returns the end of the word (letters, digits, _) starting at i.
func wordEnd(line []byte, i int) int {
	for i < len(line) && isWordByte(line[i]) {
		i++
	}
	return i
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
