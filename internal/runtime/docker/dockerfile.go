package docker

import (
	"fmt"
	"strconv"
	"strings"
)

// BaseImages returns the images a Dockerfile build needs from the engine, as
// they are written after ARG expansion (see baseImages), or the reason the
// Dockerfile cannot be read. The Host checks them before it stores a
// program, so that a user cannot build on an image that is not theirs.
func BaseImages(dockerfile string) ([]string, error) { return baseImages(dockerfile) }

// BaseImages is the package's BaseImages, as a method, so the Host can ask
// the driver it was given without depending on this package.
func (d *Driver) BaseImages(dockerfile string) ([]string, error) { return baseImages(dockerfile) }

// CodeSteps returns the line numbers of the instructions that would run
// code while the image builds: RUN, and ONBUILD (a trigger that runs in a
// later build FROM this image). The legacy builder runs them in ordinary
// containers (the engine's default runtime, the image's user, no limits of
// the program), which is why the Host refuses them in user Dockerfiles.
func (d *Driver) CodeSteps(dockerfile string) ([]int, error) {
	lines, err := logicalLines(dockerfile)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, ln := range lines {
		if f := strings.Fields(ln.text); len(f) > 0 {
			switch strings.ToUpper(f[0]) {
			case "RUN", "ONBUILD":
				out = append(out, ln.no)
			}
		}
	}
	return out, nil
}

// baseImages returns the images a Dockerfile needs from the engine: the
// FROM of every stage and any COPY --from that names an image rather than an
// earlier stage, excluding "scratch" and earlier stages. Variables in them
// are expanded with the defaults of the ARGs declared before the first FROM
// (the Host passes no build arguments), as the builder does.
//
// It understands what the legacy builder understands: parser directives
// (escape), comments, line continuations, case-insensitive instructions,
// FROM flags and "AS name".
func baseImages(dockerfile string) ([]string, error) {
	lines, err := logicalLines(dockerfile)
	if err != nil {
		return nil, err
	}
	globals := map[string]string{}
	stages := map[string]bool{}
	nStages := 0
	var out []string
	seen := map[string]bool{}
	add := func(ref string) {
		if !seen[ref] {
			seen[ref] = true
			out = append(out, ref)
		}
	}
	for _, ln := range lines {
		fields := strings.Fields(ln.text)
		if len(fields) == 0 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "ARG":
			if nStages > 0 {
				continue // stage-local: cannot change a FROM
			}
			for _, kv := range fields[1:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					delete(globals, k) // declared without a default: unset, as the builder has it
					continue
				}
				globals[k] = unquote(v)
			}
		case "FROM":
			args := fields[1:]
			for len(args) > 0 && strings.HasPrefix(args[0], "--") {
				args = args[1:]
			}
			if len(args) != 1 && !(len(args) == 3 && strings.EqualFold(args[1], "AS")) {
				return nil, fmt.Errorf("line %d: malformed FROM: %q", ln.no, ln.text)
			}
			ref, err := expand(args[0], globals)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", ln.no, err)
			}
			if ref == "" {
				return nil, fmt.Errorf("line %d: FROM names no image", ln.no)
			}
			if err := checkRef(ref); err != nil {
				return nil, fmt.Errorf("line %d: FROM %w", ln.no, err)
			}
			if !strings.EqualFold(ref, "scratch") && !stages[strings.ToLower(ref)] {
				add(ref)
			}
			if len(args) == 3 {
				stages[strings.ToLower(args[2])] = true
			}
			nStages++
		case "COPY":
			for _, f := range fields[1:] {
				if !strings.HasPrefix(f, "--") {
					break
				}
				v, ok := strings.CutPrefix(f, "--from=")
				if !ok {
					continue
				}
				ref, err := expand(v, globals)
				if err != nil {
					return nil, fmt.Errorf("line %d: %w", ln.no, err)
				}
				if n, err := strconv.Atoi(ref); err == nil && n >= 0 && n < nStages {
					continue
				}
				if stages[strings.ToLower(ref)] || strings.EqualFold(ref, "scratch") || ref == "" {
					continue
				}
				if err := checkRef(ref); err != nil {
					return nil, fmt.Errorf("line %d: COPY --from=%w", ln.no, err)
				}
				add(ref)
			}
		}
	}
	if nStages == 0 {
		return nil, fmt.Errorf("no FROM instruction")
	}
	return out, nil
}

type logicalLine struct {
	no   int // line number where it starts
	text string
}

// logicalLines joins continuation lines and drops comments and blank lines.
func logicalLines(src string) ([]logicalLine, error) {
	escape := byte('\\')
	src = strings.TrimPrefix(src, "\ufeff") // the builder ignores a byte-order mark
	raw := strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")
	i := 0
	// Parser directives: "# key=value" lines at the very top. The builder
	// stops looking for them at the first line that is not a directive it
	// knows, and engines differ in which they know; so an escape directive
	// after that point is refused rather than guessed at: reading it the
	// other way than the builder would hide instructions from this parser.
	done, seenEscape := false, false
	for ; i < len(raw); i++ {
		t := strings.TrimSpace(raw[i])
		if !strings.HasPrefix(t, "#") {
			break
		}
		k, v, ok := strings.Cut(strings.TrimSpace(t[1:]), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			done = true
			continue
		}
		switch {
		case strings.EqualFold(k, "escape"):
			if done || seenEscape {
				return nil, fmt.Errorf("line %d: an escape directive must come first (or right after syntax), once", i+1)
			}
			seenEscape = true
			switch v {
			case "\\", "`":
				escape = v[0]
			default:
				return nil, fmt.Errorf("invalid escape directive %q", v)
			}
		case strings.EqualFold(k, "syntax"):
		default:
			done = true
		}
	}
	var out []logicalLine
	var cur strings.Builder
	start := 0
	for ; i < len(raw); i++ {
		t := strings.TrimSpace(raw[i])
		if strings.HasPrefix(t, "#") {
			continue // comments, also inside continuations
		}
		if cur.Len() == 0 {
			if t == "" {
				continue
			}
			start = i + 1
		}
		if strings.HasSuffix(t, string(escape)) {
			cur.WriteString(t[:len(t)-1])
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(t)
		out = append(out, logicalLine{no: start, text: cur.String()})
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, logicalLine{no: start, text: cur.String()})
	}
	return out, nil
}

// expand substitutes $VAR, ${VAR}, ${VAR:-default} and ${VAR:+alternative}.
func expand(s string, vars map[string]string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		if s[i+1] == '{' {
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("unterminated ${ in %q", s)
			}
			body := s[i+2 : i+end]
			i += end
			n := identLen(body)
			name, rest := body[:n], body[n:]
			op, word := "", ""
			for _, o := range []string{":-", ":+", "-", "+"} {
				if strings.HasPrefix(rest, o) {
					op, word = o, rest[len(o):]
					break
				}
			}
			if n == 0 || op == "" && rest != "" {
				return "", fmt.Errorf("unsupported variable ${%s} in %q", body, s)
			}
			v, set := vars[name]
			switch op {
			case ":-":
				if !set || v == "" {
					v = word
				}
			case "-":
				if !set {
					v = word
				}
			case ":+":
				if set && v != "" {
					v = word
				} else {
					v = ""
				}
			case "+":
				if set {
					v = word
				} else {
					v = ""
				}
			}
			b.WriteString(v)
			continue
		}
		j := i + 1 + identLen(s[i+1:])
		if j == i+1 {
			b.WriteByte(c)
			continue
		}
		b.WriteString(vars[s[i+1:j]])
		i = j - 1
	}
	return b.String(), nil
}

// identLen is the length of the variable name s starts with.
func identLen(s string) int {
	j := 0
	for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
		j++
	}
	return j
}

// checkRef refuses an image reference holding anything but the characters
// of a reference (letters, digits, . _ - / : @). Quotes, escapes and
// variables left after expansion are interpreted by the builder's own
// lexer, so a reference that needs them could name another image than
// the one this parser reports.
func checkRef(ref string) error {
	for i := 0; i < len(ref); i++ {
		c := ref[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._-/:@", c) >= 0) {
			return fmt.Errorf("%q: an image reference may hold only letters, digits and . _ - / : @", ref)
		}
	}
	return nil
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
		return v[1 : len(v)-1]
	}
	return v
}
