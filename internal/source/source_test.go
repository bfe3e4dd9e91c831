package source

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

func TestValidateUserID(t *testing.T) {
	tests := []struct {
		id     string
		ok     bool
		reason string // substring of the error
	}{
		{"a", true, ""},
		{"alice", true, ""},
		{"a1-b2-c3", true, ""},
		{"a--b", true, ""},
		{strings.Repeat("a", 32), true, ""},
		{"", false, "must not be empty"},
		{strings.Repeat("a", 33), false, "33 characters"},
		{"Alice", false, "'A' at position 1"},
		{"1abc", false, "must start with a lower-case letter"},
		{"-abc", false, "must start with a lower-case letter"},
		{"abc-", false, "must not end with a dash"},
		{"a_b", false, "'_' at position 2"},
		{"a b", false, "' ' at position 2"},
		{"a/b", false, "'/'"},
		{"../x", false, "'.'"},
		{"a.b", false, "'.'"},
		{"ä", false, "position 1"},
		{"a\x00", false, `'\x00'`},
	}
	for _, tt := range tests {
		err := ValidateUserID(tt.id)
		if tt.ok {
			if err != nil {
				t.Errorf("ValidateUserID(%q) = %v, want nil", tt.id, err)
			}
			continue
		}
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "user_id" {
			t.Errorf("ValidateUserID(%q) = %#v, want a *ValidationError for user_id", tt.id, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("ValidateUserID(%q) = %q, want it to mention %q", tt.id, err, tt.reason)
		}
	}
}

// shuffled returns a copy of files built by inserting the keys in a random
// order into a map with a random capacity hint.
func shuffled(r *rand.Rand, files Files) Files {
	paths := files.Paths()
	r.Shuffle(len(paths), func(i, j int) { paths[i], paths[j] = paths[j], paths[i] })
	out := make(Files, r.IntN(2*len(paths)+1))
	for _, p := range paths {
		out[p] = files[p]
	}
	return out
}

func TestBuildIDIgnoresMapOrder(t *testing.T) {
	files := Files{}
	for i := range 200 {
		files[fmt.Sprintf("pkg%d/file%03d.go", i%7, i)] = fmt.Sprintf("package pkg%d // %d\n", i%7, i)
	}
	want := BuildID("alice", "FROM scratch\n", files)
	r := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		if got := BuildID("alice", "FROM scratch\n", shuffled(r, files)); got != want {
			t.Fatalf("BuildID changed with map order: %s, then %s", want, got)
		}
	}
}

func TestBuildIDDistinguishesInputs(t *testing.T) {
	// Every entry must get an id different from every other entry: each
	// pair would collide under a naive concatenation of the bytes.
	inputs := []struct {
		name       string
		dockerfile string
		files      Files
	}{
		{"empty", "", Files{}},
		{"a=bc", "", Files{"a": "bc"}},
		{"ab=c", "", Files{"ab": "c"}},
		{"a=b,c=d", "", Files{"a": "b", "c": "d"}},
		{"a=bc=d", "", Files{"a": "bc=d"}},
		{"a=b c=d merged", "", Files{"a": "bcd"}},
		{"dockerfile only", "FROM scratch", Files{}},
		{"dockerfile text as file", "", Files{"FROM scratch": ""}},
		{"dockerfile + a=bc", "FROM scratch", Files{"a": "bc"}},
		{"dockerfile moved into a file's content", "FROM", Files{"a": " scratch"}},
		{"empty file", "", Files{"a": ""}},
		{"two empty files", "", Files{"a": "", "b": ""}},
		{"length-like bytes", "", Files{"a\x00\x00\x00\x00\x00\x00\x00\x01b": "c"}},
	}
	seen := map[string]string{}
	for _, in := range inputs {
		id := BuildID("alice", in.dockerfile, in.files)
		if other, ok := seen[id]; ok {
			t.Errorf("%q and %q share build id %s", in.name, other, id)
		}
		seen[id] = in.name
	}
}

func TestBuildIDOwner(t *testing.T) {
	files := Files{"main.go": "package main\n", "go.mod": "module x\n"}
	if BuildID("alice", "", files) == BuildID("bob", "", files) {
		t.Fatal("two owners of the same source share a build id")
	}
	// The owner is length-prefixed: moving a byte between owner and
	// source changes the id.
	if BuildID("a", "b", Files{}) == BuildID("ab", "", Files{}) {
		t.Fatal("owner and Dockerfile run together")
	}
}

func TestBuildIDDockerfile(t *testing.T) {
	files := Files{"main.go": "package main\n", "go.mod": "module x\n"}
	with := BuildID("alice", "FROM scratch\n", files)
	without := BuildID("alice", "", files)
	if with == without {
		t.Fatalf("a Dockerfile does not change the id: %s", with)
	}
	// A root "Dockerfile" file is the Dockerfile: same build, same id.
	asFile := Files{"main.go": "package main\n", "go.mod": "module x\n", "Dockerfile": "FROM scratch\n"}
	if got := BuildID("alice", "", asFile); got != with {
		t.Fatalf("Dockerfile as a file: %s, as the dockerfile: %s; want equal", got, with)
	}
	if len(asFile) != 3 {
		t.Fatalf("BuildID modified its input: %v", asFile)
	}
	// A Dockerfile in a subfolder is an ordinary file.
	if got := BuildID("alice", "", Files{"main.go": "package main\n", "go.mod": "module x\n", "sub/Dockerfile": "FROM scratch\n"}); got == with {
		t.Fatalf("sub/Dockerfile counted as the Dockerfile")
	}
}

func TestBuildIDFormatAndStability(t *testing.T) {
	id := BuildID("alice", "", Files{"go.mod": "module example.com/x\n", "main.go": "package main\n\nfunc main() {}\n"})
	if !regexp.MustCompile(`^build-[0-9a-f]{24}$`).MatchString(id) {
		t.Fatalf("BuildID = %q, want build-<24 hex>", id)
	}
	if err := ValidateBuildID(id); err != nil {
		t.Fatal(err)
	}
	// Pin the encoding (the value was computed independently, in Python,
	// from the documented encoding): image reuse and stored records depend on ids
	// staying the same across Host versions. Change this only together
	// with buildIDDomain's version.
	if want := "build-72c48a6bfbfcb36caba59df0"; id != want {
		t.Fatalf("BuildID = %s, was %s: the encoding changed", id, want)
	}
	// The first Hosts' ids, which stored programs may still carry.
	legacy := LegacyBuildID("", Files{"go.mod": "module example.com/x\n", "main.go": "package main\n\nfunc main() {}\n"})
	if legacy != "build-620ab2e7fedc" || !IsLegacyBuildID(legacy) || IsLegacyBuildID(id) {
		t.Fatalf("LegacyBuildID = %s", legacy)
	}
}

func TestValidateBuildID(t *testing.T) {
	for _, id := range []string{"", "build-", "build-0123456789a", "build-0123456789abc", "build-0123456789ab0123456789a", "build-0123456789AB", "Build-0123456789ab", "build_0123456789ab", "build-0123456789ag", "../../etc"} {
		if err := ValidateBuildID(id); err == nil {
			t.Errorf("ValidateBuildID(%q) = nil, want an error", id)
		}
	}
	for _, id := range []string{"build-0123456789ab", "build-0123456789ab0123456789ab"} {
		if err := ValidateBuildID(id); err != nil {
			t.Error(err)
		}
	}
}

func TestProgramID(t *testing.T) {
	build := BuildID("alice", "", Files{"go.mod": "module x\n"})
	re := regexp.MustCompile(`^alice-` + build + `-[0-9a-f]{8}$`)
	seen := map[string]bool{}
	for range 100 {
		id := NewProgramID("alice", build)
		if !re.MatchString(id) {
			t.Fatalf("NewProgramID = %q, want alice-%s-<8 hex>", id, build)
		}
		if err := ValidateProgramID(id); err != nil {
			t.Fatal(err)
		}
		if seen[id] {
			t.Fatalf("NewProgramID repeated %q", id)
		}
		seen[id] = true
	}
	long := NewProgramID(strings.Repeat("a", 32), build)
	if err := ValidateProgramID(long); err != nil {
		t.Fatalf("ValidateProgramID(%q) = %v", long, err)
	}
	for _, id := range []string{
		"", "alice", "alice-build-0123456789ab", "alice-build-0123456789ab-0123456",
		"alice-build-0123456789ab-0123456g", "Alice-build-0123456789ab-01234567",
		"-build-0123456789ab-01234567", "a_b-build-0123456789ab-01234567",
		"../x-build-0123456789ab-01234567", "alice-build-0123456789ab_01234567",
		"alice_build-0123456789ab-01234567", "alice-build-0123456789AB-01234567",
		strings.Repeat("a", 33) + "-build-0123456789ab-01234567",
	} {
		if err := ValidateProgramID(id); err == nil {
			t.Errorf("ValidateProgramID(%q) = nil, want an error", id)
		}
	}
	if err := ValidateProgramID("a-b-build-0123456789ab-01234567"); err != nil {
		t.Errorf("user id with a dash: %v", err)
	}
}

func TestIsGoModule(t *testing.T) {
	tests := []struct {
		name       string
		dockerfile string
		files      Files
		want       bool
	}{
		{"go.mod at root", "", Files{"go.mod": "module x\n", "main.go": ""}, true},
		{"no go.mod", "", Files{"main.go": ""}, false},
		{"go.mod in a subfolder", "", Files{"sub/go.mod": "module x\n"}, false},
		{"dockerfile given", "FROM scratch", Files{"go.mod": "module x\n"}, false},
		{"Dockerfile file", "", Files{"go.mod": "module x\n", "Dockerfile": "FROM scratch"}, false},
		{"Dockerfile in a subfolder", "", Files{"go.mod": "module x\n", "docker/Dockerfile": "FROM scratch"}, true},
	}
	for _, tt := range tests {
		if got := IsGoModule(tt.dockerfile, tt.files); got != tt.want {
			t.Errorf("%s: IsGoModule = %v, want %v", tt.name, got, tt.want)
		}
	}
}
