package host

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/store"
)

func TestProgramImageBuild(t *testing.T) {
	for ref, want := range map[string]string{
		"hersh-program-build-0123456789ab":                          "build-0123456789ab",
		"hersh-program-build-0123456789ab:latest":                   "build-0123456789ab",
		"hersh-program-abc:v2":                                      "abc",
		"docker.io/library/hersh-program-abc":                       "abc",
		"localhost:5000/x/hersh-program-abc:1":                      "abc",
		"hersh-program-abc@sha256:" + strings.Repeat("0", 64):       "abc",
		"HERSH-PROGRAM-abc":                                         "abc",
		"hersh-program-":                                            "",
		"hersh-program-BUILD_ID":                                    "BUILD_ID",
		"registry:5000/hersh-program-abc@sha256:" + "0123456789abc": "abc",
	} {
		if got, ok := programImageBuild(ref); !ok || got != want {
			t.Errorf("programImageBuild(%q) = %q, %v; want %q", ref, got, ok, want)
		}
	}
	for _, ref := range []string{"scratch", "alpine:3.19", "hersh-program", "hersh-programs-abc", "my-hersh-program-abc", "hersh-program-abc/x"} {
		if got, ok := programImageBuild(ref); ok {
			t.Errorf("programImageBuild(%q) = %q, true; want not a program image", ref, got)
		}
	}
}

// TestCheckDockerfile checks the ownership rule and the policy of package
// dockerfile on a bare Host (a store; no engine needed).
func TestCheckDockerfile(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "hershy.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	for _, p := range []store.Program{
		{ID: "ann-1", UserID: "ann", Program: lifecycle.Program{BuildID: "build-aaaaaaaaaaaa"}},
		{ID: "bob-1", UserID: "bob", Program: lifecycle.Program{BuildID: "build-bbbbbbbbbbbb"}},
	} {
		p.State, p.Desired = lifecycle.Created, lifecycle.DesiredStopped
		if _, err := st.CreateProgram(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	h := &Host{store: st}
	for _, c := range []struct {
		name, dockerfile string
		want             string // "" when allowed
	}{
		{"scratch", "FROM scratch\nCOPY a /a\n", ""},
		{"operator image", "FROM alpine:3.19\n", ""},
		{"own program", "FROM hersh-program-build-aaaaaaaaaaaa\nENV X=1\n", ""},
		{"own program, tag and registry", "FROM docker.io/library/hersh-program-build-aaaaaaaaaaaa:latest\n", ""},
		{"own program by COPY --from", "FROM scratch\nCOPY --from=hersh-program-build-aaaaaaaaaaaa /app /app\n", ""},
		{"another user's program", "FROM hersh-program-build-bbbbbbbbbbbb\n", "line 1: FROM hersh-program-build-bbbbbbbbbbbb: no program of yours was built from it"},
		{"another user's program, spelled otherwise", "FROM library/hersh-program-build-bbbbbbbbbbbb@sha256:" + strings.Repeat("0", 64) + "\n", "no program of yours"},
		{"another user's program in a later stage", "FROM hersh-program-build-aaaaaaaaaaaa AS a\nFROM scratch\nCOPY --from=hersh-program-build-bbbbbbbbbbbb /x /x\n", "line 3: COPY --from=hersh-program-build-bbbbbbbbbbbb: no program of yours"},
		{"another user's program, quoted COPY --from", "FROM scratch\nCOPY --from=\"hersh-program-build-bbbbbbbbbbbb\" /x /x\n", "line 2: COPY --from=hersh-program-build-bbbbbbbbbbbb: no program of yours"},
		{"another user's program named as the current stage", "FROM scratch AS hersh-program-build-bbbbbbbbbbbb\nCOPY --from=hersh-program-build-bbbbbbbbbbbb /app /x\n", "line 2: COPY --from=hersh-program-build-bbbbbbbbbbbb: no program of yours"},
		{"blank-line bypass", "FROM hersh-program-build-aaaaaaaaaaaa\nCOPY \\\n\n--from=hersh-program-build-bbbbbbbbbbbb /app /victim-app\n", "line 2: COPY continues over an empty line (line 3)"},
		{"ARG bypass", "ARG IMG=scratch \\\n\nIMG=hersh-program-build-bbbbbbbbbbbb\nFROM ${IMG}\n", "line 1: ARG continues over an empty line"},
		{"another user's program through an arg", "ARG B=build-bbbbbbbbbbbb\nFROM hersh-program-${B}\n", "line 2: FROM hersh-program-${B}: variables are not allowed"},
		{"unknown build", "FROM hersh-program-build-cccccccccccc\n", "no program of yours"},
		{"placeholder left in", "FROM hersh-program-BUILD_ID\n", "line 1: FROM hersh-program-BUILD_ID: not a valid image reference"},
		{"image id", "FROM ec89\n", "not by image id"},
		{"image id digest", "FROM scratch\nCOPY --from=sha256:ec89 /x /x\n", "not by image id"},
		{"does not parse", "FROM a b c d\n", "line 1: FROM requires either one or three arguments"},
		{"no FROM", "ARG A=1\n", "no FROM"},
		{"RUN", "FROM alpine:3.19\nRUN true\n", "line 2: RUN is not allowed"},
		{"RUN in exec form, lower case, continued", "FROM hersh-program-build-aaaaaaaaaaaa\nENV A=1\nrun [\"/app\", \\\n  \"-x\"]\n", "line 3: RUN is not allowed"},
		{"ONBUILD", "FROM scratch\nONBUILD COPY a /a\n", "line 2: ONBUILD is not allowed"},
		{"remote ADD", "FROM scratch\nADD http://127.0.0.1:1/x /x\n", "line 2: ADD is not allowed"},
		{"VOLUME", "FROM scratch\nVOLUME /data\n", "line 2: VOLUME is not allowed"},
		{"HEALTHCHECK", "FROM scratch\nHEALTHCHECK --interval=1ms CMD [\"/app\"]\n", "line 2: HEALTHCHECK is not allowed"},
		{"Host label", "FROM scratch\nLABEL org.hershy.program-id=x\n", "line 2: LABEL org.hershy.program-id"},
		{"quoted name", "FROM \"hersh-program-build-bbbbbbbbbbbb\"\n", "may hold only"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, form := range []string{"field", "file"} {
				df, files := c.dockerfile, source.Files{"a": "x"}
				if form == "file" {
					df, files = "", source.Files{"a": "x", source.DockerfileName: c.dockerfile}
				}
				err := h.checkDockerfile(ctx, "ann", df, files)
				if c.want == "" {
					if err != nil {
						t.Fatalf("%s: %v", form, err)
					}
					continue
				}
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "dockerfile: ") || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("%s: err = %v, want ErrInvalid mentioning %q", form, err, c.want)
				}
			}
		})
	}
	if err := h.checkDockerfile(ctx, "bob", "FROM hersh-program-build-bbbbbbbbbbbb\n", nil); err != nil {
		t.Errorf("bob on his own program: %v", err)
	}
	if err := h.checkDockerfile(ctx, "ann", "", counterFiles()); err != nil {
		t.Errorf("a Go program: %v", err)
	}
}

func counterFiles() source.Files {
	return source.Files{"main.go": "package main\n", "go.mod": "module x\n"}
}
