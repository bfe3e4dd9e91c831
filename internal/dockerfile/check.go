package dockerfile

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/hershyorg/hershy/internal/driver"
)

// Base is an image a build would take from the engine.
type Base struct {
	Ref  string // as written in the Dockerfile (no variables, quotes or escapes)
	Line int    // 1-based line of the instruction
	Copy bool   // true: COPY --from; false: a stage's FROM
}

// String names the base as the Dockerfile does: "FROM ref" or "COPY --from=ref".
func (b Base) String() string {
	if b.Copy {
		return "COPY --from=" + b.Ref
	}
	return "FROM " + b.Ref
}

// Result is what a Dockerfile the policy accepts needs from the engine.
type Result struct {
	// Bases are the images the build takes from the engine, in the order
	// they appear: every stage's FROM that names neither scratch nor an
	// earlier stage, and every COPY --from that names an image rather than
	// an earlier stage's name or index.
	Bases []Base
}

// Error is a refusal: why, and the line of the instruction (0 when it
// concerns the file as a whole).
type Error struct {
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

func refuse(line int, format string, a ...any) *Error {
	return &Error{Line: line, Msg: fmt.Sprintf(format, a...)}
}

// MaxSize is the largest Dockerfile Check reads, in bytes. The parser's
// word splitting (LABEL, ENV, ARG) is quadratic in an instruction's length,
// and an instruction may span any number of continuation lines: measured
// here, a 234 KiB LABEL took 17 s to parse and a 468 KiB one 84 s, in the
// Host and again in the engine. A Dockerfile this policy accepts (no RUN)
// needs a few hundred bytes; 16 KiB bounds the worst case at well under a
// second.
const MaxSize = 16 << 10

// parserPanic starts the refusal of a file the parser panicked on.
const parserPanic = "the Dockerfile cannot be read"

// Check reads dockerfile with the engine's parser and applies the policy
// (see the package documentation). It returns the images the build would
// take from the engine, or an *Error naming the line it refuses. It never
// panics, whatever the input.
func Check(dockerfile string) (res Result, err error) {
	defer func() {
		// The parser is a library written for trusted input: whatever
		// breaks in it is a refusal, not a crash of the Host.
		if r := recover(); r != nil {
			res, err = Result{}, refuse(0, "%s: %v", parserPanic, r)
		}
	}()
	if len(dockerfile) > MaxSize {
		return Result{}, refuse(0, "the Dockerfile is %d bytes; at most %d are allowed", len(dockerfile), MaxSize)
	}
	lines := splitLines(dockerfile)
	if err := checkDirectives(lines); err != nil {
		return Result{}, err
	}
	parsed, err := parser.Parse(strings.NewReader(dockerfile))
	if err != nil {
		return Result{}, parseError(err)
	}
	if len(parsed.Warnings) > 0 {
		return Result{}, warningError(parsed, lines)
	}
	c := &checker{}
	for _, node := range parsed.AST.Children {
		if err := c.instruction(node); err != nil {
			return Result{}, err
		}
	}
	if !c.inStage {
		return Result{}, refuse(0, "no FROM instruction")
	}
	// The engine parses the whole file before it builds anything; whatever
	// it would refuse is refused here too, so the policy never passes a file
	// the engine reads otherwise.
	if _, _, err := instructions.Parse(parsed.AST); err != nil {
		return Result{}, parseError(err)
	}
	return c.res, nil
}

// splitLines splits src into lines as the parser's scanner does (at "\n",
// dropping one "\r" before it), so that index i is line i+1.
func splitLines(src string) []string {
	lines := strings.Split(src, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}

// directiveLine is the parser's own pattern for a parser directive.
var directiveLine = regexp.MustCompile(`^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`)

// checkDirectives reads the parser directives at the top of the file the
// way the parser does (they end at the first line that is not a directive
// the parser knows): a syntax directive is refused, and a repeated or
// invalid escape directive is refused here with its line (the parser
// refuses it too, but without a usable line).
func checkDirectives(lines []string) error {
	seenEscape := false
	for i, l := range lines {
		if i == 0 {
			l = strings.TrimPrefix(l, "\ufeff")
		}
		m := directiveLine.FindStringSubmatch(strings.TrimLeftFunc(l, unicode.IsSpace))
		if m == nil {
			return nil
		}
		switch strings.ToLower(m[1]) {
		case "syntax":
			return refuse(i+1, "a syntax directive is not allowed: the Host builds with the engine's own Dockerfile reader, never a frontend image")
		case "escape":
			if seenEscape {
				return refuse(i+1, "only one escape directive is allowed")
			}
			seenEscape = true
			if m[2] != "\\" && m[2] != "`" {
				return refuse(i+1, "escape directive %q: the escape character must be \\ or `", m[2])
			}
		default:
			return nil
		}
	}
	return nil
}

// parseError turns an error of the parser into an *Error with the line the
// parser gives.
func parseError(err error) error {
	line := 0
	var loc *parser.ErrorLocation
	if errors.As(err, &loc) && len(loc.Location) > 0 {
		line = loc.Location[0].Start.Line
	}
	msg := err.Error()
	// instructions.Parse puts its own "dockerfile parse error line N: " in front.
	if i := strings.Index(msg, ": "); strings.HasPrefix(msg, "dockerfile parse error line ") && i >= 0 {
		if n, convErr := strconv.Atoi(strings.TrimPrefix(msg[:i], "dockerfile parse error line ")); convErr == nil {
			line, msg = n, msg[i+2:]
		}
	}
	return refuse(line, "%s", msg)
}

// warningError refuses a file the parser warned about. The only warning of
// this parser is an empty continuation line: the engine skips it and goes
// on with the instruction, which is how a Dockerfile reader that stops at
// the blank line is shown another instruction than the one the engine
// runs. The error names the instruction's line and the empty line.
func warningError(parsed *parser.Result, lines []string) error {
	for _, node := range parsed.AST.Children {
		for ln := node.StartLine + 1; ln <= node.EndLine && ln <= len(lines); ln++ {
			if strings.TrimLeftFunc(lines[ln-1], unicode.IsSpace) == "" {
				return refuse(node.StartLine, "%s continues over an empty line (line %d), which the engine skips and so reads the next line as part of it; remove the empty line", strings.ToUpper(node.Value), ln)
			}
		}
	}
	return refuse(0, "the Dockerfile parser warns: %s", strings.Join(parsed.Warnings, " "))
}

// allowedFlags are the flags each allowed instruction may carry; an
// instruction missing here is refused (see refused).
var allowedFlags = map[string]map[string]bool{
	"from":       {},
	"copy":       {"from": true, "chown": true},
	"env":        {},
	"arg":        {},
	"label":      {},
	"maintainer": {},
	"workdir":    {},
	"user":       {},
	"entrypoint": {},
	"cmd":        {},
	"expose":     {},
	"stopsignal": {},
}

// refused says why each instruction the engine knows but the policy does
// not allow is refused.
var refused = map[string]string{
	"run":         "build steps would run outside the sandbox and the program's limits; let the Host compile Go source, and layer on a base with COPY, ENV and the like",
	"onbuild":     "its instructions would run in a later build, unchecked",
	"add":         "it makes the engine fetch URLs from the Host's network and unpack archives as root; use COPY",
	"volume":      "a volume would be a writable place outside /state, the only one a program has",
	"healthcheck": "the engine would run it inside the container outside the program's limits; the Host checks readiness itself",
	"shell":       "write CMD and ENTRYPOINT in JSON form instead",
}

// checker walks the instructions in order, tracking stages the way the
// legacy builder does: a stage's name becomes usable (FROM <name>,
// COPY --from=<name or index>) only once the stage is complete, so inside
// a stage its own name still means an image.
type checker struct {
	res     Result
	done    []string // names of completed stages, by index ("" when unnamed)
	current string   // name of the stage being built
	inStage bool
}

func (c *checker) instruction(node *parser.Node) error {
	line, cmd := node.StartLine, node.Value
	name := strings.ToUpper(cmd)
	if why, ok := refused[cmd]; ok {
		return refuse(line, "%s is not allowed: %s", name, why)
	}
	flags, ok := allowedFlags[cmd]
	if !ok {
		return refuse(line, "unknown instruction %s", name)
	}
	for _, f := range node.Flags {
		fl, _, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if !flags[fl] {
			if cmd == "from" && fl == "platform" {
				return refuse(line, "FROM --platform is not allowed: the Host builds for its own platform")
			}
			return refuse(line, "%s --%s is not allowed%s", name, fl, flagHint(cmd))
		}
	}
	if !c.inStage && cmd != "from" && cmd != "arg" {
		return refuse(line, "%s before the first FROM: only ARG may come before it", name)
	}
	parsed, err := instructions.ParseInstruction(node)
	if err != nil {
		return refuse(line, "%s", err.Error())
	}
	switch in := parsed.(type) {
	case *instructions.Stage:
		return c.from(line, in)
	case *instructions.CopyCommand:
		return c.copyFrom(line, in.From)
	case *instructions.LabelCommand:
		for _, kv := range in.Labels {
			if err := checkLabelKey(line, kv.Key); err != nil {
				return err
			}
		}
	}
	return nil
}

func flagHint(cmd string) string {
	if cmd == "copy" {
		return " (COPY takes --from and --chown)"
	}
	return ""
}

// from starts a stage: the previous one becomes usable by name and index.
func (c *checker) from(line int, st *instructions.Stage) error {
	if c.inStage {
		c.done = append(c.done, c.current)
	}
	c.inStage, c.current = true, st.Name
	if st.Name != "" && c.stageIndex(st.Name) >= 0 {
		return refuse(line, "stage name %q is used twice", st.Name)
	}
	ref := st.BaseName
	if err := checkRefText(line, "FROM", ref); err != nil {
		return err
	}
	if ref == "scratch" || c.stageIndex(ref) >= 0 {
		return nil
	}
	if err := checkImageRef(line, "FROM "+ref, ref); err != nil {
		return err
	}
	c.res.Bases = append(c.res.Bases, Base{Ref: ref, Line: line})
	return nil
}

// copyFrom decides what COPY --from names: nothing (the build context), a
// completed stage (by name, or by index as strconv reads it, which is how
// the builder tells an index), or an image.
func (c *checker) copyFrom(line int, from string) error {
	if from == "" {
		return nil
	}
	if err := checkRefText(line, "COPY --from=", from); err != nil {
		return err
	}
	if n, err := strconv.ParseInt(from, 10, 0); err == nil {
		if n < 0 || n >= int64(len(c.done)) {
			return refuse(line, "COPY --from=%s: no earlier stage has that index", from)
		}
		return nil
	}
	if c.stageIndex(from) >= 0 {
		return nil
	}
	if from == "scratch" {
		return refuse(line, "COPY --from=scratch: scratch holds no files")
	}
	if err := checkImageRef(line, "COPY --from="+from, from); err != nil {
		return err
	}
	c.res.Bases = append(c.res.Bases, Base{Ref: from, Line: line, Copy: true})
	return nil
}

// stageIndex is the index of the completed stage called name (stage names
// are case-insensitive), or -1.
func (c *checker) stageIndex(name string) int {
	name = strings.ToLower(name)
	for i, s := range c.done {
		if s != "" && s == name {
			return i
		}
	}
	return -1
}

// checkRefText refuses an image reference holding anything but the
// characters of a reference: letters, digits and . _ - / : @. So no
// variable, quote or escape is left for the builder's word expansion to
// interpret, and the reference the policy reports is the one the engine
// uses.
func checkRefText(line int, what, ref string) error {
	if strings.Contains(ref, "$") {
		return refuse(line, "%s%s: variables are not allowed here: name the image itself", what, sep(what, ref))
	}
	for i := 0; i < len(ref); i++ {
		c := ref[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._-/:@", c) >= 0) {
			return refuse(line, "%s%s: an image reference may hold only letters, digits and . _ - / : @ (no quotes or escapes)", what, sep(what, ref))
		}
	}
	return nil
}

func sep(what, ref string) string {
	if strings.HasSuffix(what, "=") {
		return ref
	}
	return " " + ref
}

// checkImageRef refuses image ids and anything the engine would not read
// as a repository reference.
func checkImageRef(line int, what, ref string) error {
	if isImageID(ref) {
		return refuse(line, "%s: name base images by repository and tag, not by image id", what)
	}
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return refuse(line, "%s: not a valid image reference: %v", what, err)
	}
	return nil
}

// isImageID reports whether the engine may read ref as an image id rather
// than a name: "sha256:<hex>" (or another digest algorithm), or hex digits
// alone, which the engine matches against id prefixes (two digits can be
// enough).
func isImageID(ref string) bool {
	s := strings.ToLower(ref)
	for _, alg := range []string{"sha256:", "sha384:", "sha512:"} {
		if strings.HasPrefix(s, alg) {
			return true
		}
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// checkLabelKey refuses label keys under the Host's prefix, and keys the
// engine would expand (variables, quotes, escapes), which could become one.
func checkLabelKey(line int, key string) error {
	if strings.ContainsAny(key, "$\\`'\"") {
		return refuse(line, "LABEL %s: variables, quotes and escapes are not allowed in label keys", key)
	}
	if strings.HasPrefix(strings.ToLower(key), driver.LabelPrefix) {
		return refuse(line, "LABEL %s: keys under %s are the Host's own", key, driver.LabelPrefix)
	}
	return nil
}
