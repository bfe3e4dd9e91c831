package dockerfile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// digest is a well-formed sha256 digest for references.
var digest = "sha256:" + strings.Repeat("ab", 32)

// TestCheckRefused: every attack of issue 9 on the Dockerfile check, and
// the tricky spellings around them, is refused with the instruction's line.
func TestCheckRefused(t *testing.T) {
	for _, c := range []struct {
		name, dockerfile string
		line             int    // 0: the file as a whole
		want             string // in the message
	}{
		// Issue 9, item 2: the engine's parser skips an empty continuation
		// line, so these are one instruction to the engine.
		{"blank-line COPY --from bypass", "FROM hersh-program-mine\nCOPY \\\n\n--from=hersh-program-victim /app /victim-app\n", 2, "empty line (line 3)"},
		{"blank-line ARG bypass", "ARG IMG=scratch \\\n\nIMG=hersh-program-victim\nFROM ${IMG}\n", 1, "empty line (line 2)"},
		{"blank line of spaces and tabs", "FROM scratch\nCOPY \\\n \t \n--from=hersh-program-victim /app /x\n", 2, "empty line (line 3)"},
		{"blank line of unicode spaces", "FROM scratch\nCOPY \\\n\u00a0\u2003\n--from=hersh-program-victim /app /x\n", 2, "empty line (line 3)"},
		{"blank line after a comment inside the continuation", "FROM scratch\nCOPY \\\n# note\n\n--from=hersh-program-victim /app /x\n", 2, "empty line (line 4)"},
		{"blank line with CRLF", "FROM scratch\r\nCOPY \\\r\n\r\n--from=hersh-program-victim /app /x\r\n", 2, "empty line (line 3)"},
		{"blank line with backtick escape", "# escape=`\nFROM scratch\nCOPY `\n\n--from=hersh-program-victim /app /x\n", 3, "empty line (line 4)"},
		{"blank line in a LABEL", "FROM scratch\nLABEL a=b \\\n\n  c=d\n", 2, "empty line (line 3)"},

		// Variables where they would choose an image.
		{"ARG in FROM", "ARG IMG=hersh-program-victim\nFROM ${IMG}\n", 2, "FROM ${IMG}: variables are not allowed"},
		{"bare variable in FROM", "ARG B=x\nFROM hersh-program-$B\n", 2, "variables are not allowed"},
		{"variable with default in FROM", "FROM ${B:-hersh-program-victim}\n", 1, "variables are not allowed"},
		{"variable in COPY --from", "FROM scratch\nARG S=hersh-program-victim\nCOPY --from=$S /app /x\n", 3, "COPY --from=$S: variables are not allowed"},
		{"braced variable in COPY --from", "FROM scratch\nCOPY --from=${S} /app /x\n", 2, "variables are not allowed"},

		// Instructions outside the allowlist.
		{"ADD of a URL", "FROM scratch\nADD http://127.0.0.1:8080/secret /secret\n", 2, "ADD is not allowed"},
		{"ADD of a local archive", "FROM scratch\nADD a.tar /\n", 2, "use COPY"},
		{"add in lower case", "FROM scratch\nadd http://127.0.0.1/ /x\n", 2, "ADD is not allowed"},
		{"VOLUME", "FROM scratch\nVOLUME /data\n", 2, "VOLUME is not allowed"},
		{"VOLUME in JSON form", "FROM scratch\nVOLUME [\"/data\"]\n", 2, "VOLUME is not allowed"},
		{"HEALTHCHECK", "FROM scratch\nHEALTHCHECK --interval=1ms CMD [\"/app\"]\n", 2, "HEALTHCHECK is not allowed"},
		{"HEALTHCHECK NONE", "FROM scratch\nHEALTHCHECK NONE\n", 2, "HEALTHCHECK is not allowed"},
		{"RUN", "FROM scratch\nRUN true\n", 2, "RUN is not allowed"},
		{"RUN in exec form, lower case, continued", "FROM hersh-program-mine\nENV A=1\nrun [\"/app\", \\\n  \"-x\"]\n", 3, "RUN is not allowed"},
		{"RUN with a mount flag", "FROM scratch\nRUN --mount=type=bind,target=/x true\n", 2, "RUN is not allowed"},
		{"ONBUILD", "FROM scratch\nONBUILD COPY a /a\n", 2, "ONBUILD is not allowed"},
		{"SHELL", "FROM scratch\nSHELL [\"/bin/sh\", \"-c\"]\n", 2, "SHELL is not allowed"},
		{"unknown instruction", "FROM scratch\nFROBNICATE /x\n", 2, "unknown instruction FROBNICATE"},

		// Directives.
		{"syntax directive", "# syntax=docker/dockerfile:1\nFROM scratch\n", 1, "syntax directive is not allowed"},
		{"syntax directive after escape", "# escape=`\n#SYNTAX = example.com/frontend\nFROM scratch\n", 2, "syntax directive"},
		{"syntax directive after a byte-order mark", "\ufeff  # syntax=x\nFROM scratch\n", 1, "syntax directive"},
		{"escape twice", "# escape=`\n# escape=\\\nFROM scratch\n", 2, "only one escape directive"},
		{"invalid escape", "# escape=x\nFROM scratch\n", 1, "escape character must be"},

		// Flags.
		{"FROM --platform", "FROM --platform=linux/amd64 scratch\n", 1, "FROM --platform is not allowed"},
		{"COPY --chmod", "FROM scratch\nCOPY --chmod=4755 a /a\n", 2, "COPY --chmod is not allowed (COPY takes --from and --chown)"},
		{"COPY --link", "FROM scratch\nCOPY --link a /a\n", 2, "COPY --link is not allowed"},
		{"quoted flag name", "FROM scratch\nCOPY --\"chmod\"=4755 a /a\n", 2, "COPY --chmod is not allowed"},
		{"flag on ARG, which the parser ignores", "ARG --x=1 A\nFROM scratch\n", 1, "ARG --x is not allowed"},
		{"flag on STOPSIGNAL, which the parser ignores", "FROM scratch\nSTOPSIGNAL --x=1 SIGTERM\n", 2, "STOPSIGNAL --x is not allowed"},
		{"flag on ENV", "FROM scratch\nENV --x=1 A=b\n", 2, "ENV --x is not allowed"},
		{"--from twice", "FROM scratch\nCOPY --from=a:1 --from=b:1 /a /b\n", 2, "Duplicate flag"},
		{"--from without a value", "FROM scratch\nCOPY --from /a /b\n", 2, "Missing a value"},

		// References.
		{"image id", "FROM ec89\n", 1, "FROM ec89: name base images by repository and tag, not by image id"},
		{"image id digest", "FROM scratch\nCOPY --from=sha256:ec89 /x /x\n", 2, "not by image id"},
		{"FROM an index is an image id", "FROM scratch AS a\nFROM 0\n", 2, "not by image id"},
		{"hex COPY --from", "FROM scratch\nCOPY --from=0abc /x /x\n", 2, "not by image id"},
		{"quoted FROM", "FROM \"hersh-program-victim\"\n", 1, "may hold only letters"},
		{"single-quoted FROM", "FROM 'hersh-program-victim'\n", 1, "may hold only letters"},
		{"escaped FROM", "FROM hersh-progr\\am-victim\n", 1, "may hold only letters"},
		{"escaped COPY --from", "FROM scratch\nCOPY --from='hersh-progr\\\\am-x' /a /b\n", 2, "may hold only letters"},
		{"upper case", "FROM SCRATCH\n", 1, "not a valid image reference"},
		{"not a reference", "FROM a:b:c\n", 1, "not a valid image reference"},
		{"COPY --from=scratch", "FROM scratch\nCOPY --from=scratch /a /b\n", 2, "scratch holds no files"},

		// Stages.
		{"COPY --from its own stage's index", "FROM scratch\nFROM scratch\nCOPY --from=1 /a /b\n", 3, "no earlier stage has that index"},
		{"COPY --from a negative index", "FROM scratch\nCOPY --from=-1 /a /b\n", 2, "no earlier stage"},
		{"COPY --from a signed index", "FROM scratch\nFROM scratch\nCOPY --from=+0 /a /b\n", 3, "may hold only letters"},
		{"COPY --from an index out of range", "FROM scratch\nCOPY --from=7 /a /b\n", 2, "no earlier stage"},
		{"stage name twice", "FROM scratch AS a\nFROM scratch AS A\n", 2, `stage name "a" is used twice`},
		{"invalid stage name", "FROM scratch AS 1a\n", 1, "invalid name for build stage"},

		// Labels.
		{"Host label", "FROM scratch\nLABEL org.hershy.program-id=victim\n", 2, "LABEL org.hershy.program-id: keys under org.hershy. are the Host's own"},
		{"Host label in capitals", "FROM scratch\nLABEL ORG.HERSHY.managed=true\n", 2, "the Host's own"},
		{"Host label in the old form", "FROM scratch\nLABEL org.hershy.managed true\n", 2, "the Host's own"},
		{"Host label among others", "FROM scratch\nLABEL a=b \\\n  org.hershy.instance=x\n", 2, "the Host's own"},
		{"quoted label key", "FROM scratch\nLABEL \"org.hershy.managed\"=true\n", 2, "quotes and escapes are not allowed in label keys"},
		{"variable label key", "FROM scratch\nARG P=org.hershy\nLABEL ${P}.managed=true\n", 3, "variables, quotes and escapes"},
		{"escaped label key", "FROM scratch\nLABEL org.hershy\\.managed=true\n", 2, "variables, quotes and escapes"},

		// Structure.
		{"no FROM", "ARG A=1\n", 0, "no FROM instruction"},
		{"nothing", "\n# just a comment\n", 0, "no instructions"},
		{"instruction before FROM", "ENV A=1\nFROM scratch\n", 1, "ENV before the first FROM"},
		{"malformed FROM", "FROM a b c d\n", 1, "FROM requires either one or three arguments"},
		{"COPY with one argument", "FROM scratch\nCOPY a\n", 2, "COPY requires at least two arguments"},
		{"ENV without value", "FROM scratch\nENV A\n", 2, "ENV must have two arguments"},
		{"over the size cap", "FROM scratch\nLABEL a=" + strings.Repeat("x", MaxSize) + "\n", 0, "at most 16384 are allowed"},
		{"one long instruction over the size cap", "FROM scratch\nLABEL a=" + strings.Repeat(strings.Repeat("x", 1000)+"\\\n", 17) + "b\n", 0, "at most 16384"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := Check(c.dockerfile)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Check = %+v, %v; want a refusal (*Error) at line %d mentioning %q", res, err, c.line, c.want)
			}
			if c.line > 0 && e.Line != c.line || !strings.Contains(e.Msg, c.want) {
				t.Fatalf("Check: %v (line %d); want line %d and %q", err, e.Line, c.line, c.want)
			}
			if c.line > 0 && !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error %q does not name the line", err)
			}
		})
	}
}

// TestCheckAccepted: accepted Dockerfiles return exactly the images the
// engine would take, with their lines.
func TestCheckAccepted(t *testing.T) {
	from := func(ref string, line int) Base { return Base{Ref: ref, Line: line} }
	copyFrom := func(ref string, line int) Base { return Base{Ref: ref, Line: line, Copy: true} }
	for _, c := range []struct {
		name, dockerfile string
		want             []Base
	}{
		{"scratch", "FROM scratch\nCOPY a /a\n", nil},
		{"every allowed instruction", "ARG V=1\nFROM scratch\nARG W\nENV A=1 B=\"two words\"\nENV C 3\n" +
			"LABEL org.opencontainers.image.title=x description=\"y z\"\nMAINTAINER someone\nWORKDIR /w\nUSER 65532:65532\n" +
			"COPY --chown=65532:65532 a b /w/\nCOPY [\"a\", \"/a\"]\nEXPOSE 8080/tcp\nSTOPSIGNAL SIGINT\n" +
			"ENTRYPOINT [\"/app\"]\nCMD [\"-x\"]\n", nil},
		{"one base", "FROM hersh-program-build-0123456789ab\nENV COUNTER_STEP=10\n", []Base{from("hersh-program-build-0123456789ab", 1)}},
		{"lower-case instructions", "from scratch\ncopy --from=img:1 /a /b\n", []Base{copyFrom("img:1", 2)}},
		{"mixed case", "FrOm img:1 aS Build\nFROM scratch\nCoPy --from=BUILD /a /b\n", []Base{from("img:1", 1)}},
		{"tags, digests and registries", "FROM docker.io/library/hersh-program-a:latest\nFROM hersh-program-b@" + digest + "\nFROM localhost:5000/x/hersh-program-c:1\n",
			[]Base{from("docker.io/library/hersh-program-a:latest", 1), from("hersh-program-b@"+digest, 2), from("localhost:5000/x/hersh-program-c:1", 3)}},
		{"multi-stage names and indexes", "FROM base:1 AS b\nFROM b\nFROM B AS c\nCOPY --from=b /x /x\nCOPY --from=0 /y /y\nCOPY --from=1 /y /y\nCOPY --from=busybox:1 /z /z\n",
			[]Base{from("base:1", 1), copyFrom("busybox:1", 7)}},
		{"COPY --from=0", "FROM hersh-program-mine AS a\nFROM scratch\nCOPY --from=0 /app /app\n", []Base{from("hersh-program-mine", 1)}},
		// Inside a stage its own name is not a stage yet: the engine takes
		// the image of that name (an old reader took it for the stage).
		{"COPY --from the current stage's name is an image", "FROM scratch AS hersh-program-victim\nCOPY --from=hersh-program-victim /app /x\n", []Base{copyFrom("hersh-program-victim", 2)}},
		{"FROM the stage's own name is an image", "FROM hersh-program-victim AS hersh-program-victim\n", []Base{from("hersh-program-victim", 1)}},
		{"a stage name that was not used yet is an image", "FROM scratch\nCOPY --from=later /a /b\nFROM scratch AS later\n", []Base{copyFrom("later", 2)}},
		// The flag's quotes are removed by the parser, as for the engine.
		{"quoted COPY --from", "FROM scratch\nCOPY --from=\"hersh-program-victim\" /app /x\n", []Base{copyFrom("hersh-program-victim", 2)}},
		{"empty COPY --from is the context", "FROM scratch\nCOPY --from= a /a\n", nil},
		{"continuation with comments between", "# top\nFROM \\\n  # inside\n  repo/img:tag \\\n  # again\n  AS x\nCOPY \\\n# note\n--from=img:2 /a /b\n",
			[]Base{from("repo/img:tag", 2), copyFrom("img:2", 7)}},
		{"escape directive", "# escape=`\nFROM `\n  img:1\n", []Base{from("img:1", 2)}},
		// With the backtick as escape a backslash continues nothing: the
		// FROM below the LABEL is an instruction of its own.
		{"backslash after an escape directive", "# escape=`\nFROM scratch\nCOPY a /a \\\nFROM hidden:1\n", []Base{from("hidden:1", 4)}},
		{"byte-order mark", "\ufeffFROM img:1\n", []Base{from("img:1", 1)}},
		{"byte-order mark and escape directive", "\ufeff# escape=`\nFROM `\n img:1\n", []Base{from("img:1", 2)}},
		{"directive after a comment is a comment", "# hello\n# escape=`\nFROM a:1 \\\n  AS b\n", []Base{from("a:1", 3)}},
		{"syntax after a comment is a comment", "# hello\n# syntax=x\nFROM scratch\n", nil},
		{"crlf", "FROM img:2\r\nCOPY a /a\r\n", []Base{from("img:2", 1)}},
		{"same image twice", "FROM img:1\nFROM img:1\nCOPY --from=img:1 /a /b\n", []Base{from("img:1", 1), from("img:1", 2), copyFrom("img:1", 3)}},
		{"scratch as a stage name", "FROM img:1 AS scratch\nFROM scratch\nCOPY --from=scratch /a /b\n", []Base{from("img:1", 1)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := Check(c.dockerfile)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.Bases, c.want) {
				t.Fatalf("bases %+v, want %+v", res.Bases, c.want)
			}
		})
	}
}

// TestCheckLargest: a Dockerfile of MaxSize bytes made of one LABEL, the
// parser's slowest case, is read (in well under a second here; no timing is
// asserted).
func TestCheckLargest(t *testing.T) {
	head, tail := "FROM scratch\nLABEL a=", "\n"
	src := head + strings.Repeat("x", MaxSize-len(head)-len(tail)) + tail
	start := time.Now()
	if _, err := Check(src); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bytes in one LABEL: %v", len(src), time.Since(start))
}

func TestImages(t *testing.T) {
	res, err := Check("FROM a:1\nFROM b:1\nCOPY --from=a:1 /x /x\nCOPY --from=c:1 /x /x\n")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Images(), []string{"a:1", "b:1", "c:1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Images() = %q, want %q", got, want)
	}
	if got := res.Bases[2].String(); got != "COPY --from=a:1" {
		t.Errorf("String() = %q", got)
	}
	if got := res.Bases[1].String(); got != "FROM b:1" {
		t.Errorf("String() = %q", got)
	}
}

func TestIsImageID(t *testing.T) {
	for _, ref := range []string{"ec", "EC89", "0123456789ab", "sha256:ec89", "SHA256:" + strings.Repeat("a", 64), "sha512:00"} {
		if !isImageID(ref) {
			t.Errorf("isImageID(%q) = false", ref)
		}
	}
	for _, ref := range []string{"", "alpine", "ec:latest", "ec89/x", "hersh-program-abc", "deadbeefz"} {
		if isImageID(ref) {
			t.Errorf("isImageID(%q) = true", ref)
		}
	}
}
