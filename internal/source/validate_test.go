package source

import (
	"errors"
	"strings"
	"testing"
)

func TestValidatePaths(t *testing.T) {
	tests := []struct {
		name   string
		files  Files
		path   string // the path the error must name ("" for none)
		reason string // substring of the error ("" for success)
	}{
		{"simple", Files{"main.go": "x"}, "", ""},
		{"subfolders", Files{"cmd/app/main.go": "x", "go.mod": "m", "internal/a/b/c.go": ""}, "", ""},
		{"dotfile", Files{".gitignore": "x", "a/.hidden": ""}, "", ""},
		{"dots inside names", Files{"a..b": "", "..a": "", "a.": ""}, "", ""},
		{"unicode", Files{"données/é.txt": ""}, "", ""},
		{"max length", Files{strings.Repeat("a", 255): ""}, "", ""},
		{"empty path", Files{"": "x"}, "", "the path is empty"},
		{"absolute", Files{"/etc/passwd": "x"}, "/etc/passwd", "absolute paths"},
		{"dotdot", Files{"../x": "x"}, "../x", `".." segments`},
		{"inner dotdot", Files{"a/../../x": "x"}, "a/../../x", `".." segments`},
		{"trailing dotdot", Files{"a/..": "x"}, "a/..", `".." segments`},
		{"dot", Files{"./a": "x"}, "./a", `"." segments`},
		{"inner dot", Files{"a/./b": "x"}, "a/./b", `"." segments`},
		{"lone dot", Files{".": "x"}, ".", `"." segments`},
		{"empty segment", Files{"a//b": "x"}, "a//b", "empty path segment"},
		{"trailing slash", Files{"a/": "x"}, "a/", "empty path segment"},
		{"backslash", Files{`a\b`: "x"}, `a\b`, "backslashes"},
		{"backslash dotdot", Files{`..\x`: "x"}, `..\x`, "backslashes"},
		{"NUL", Files{"a\x00b": "x"}, "a\x00b", "control character"},
		{"newline", Files{"a\nb": "x"}, "a\nb", "control character"},
		{"DEL", Files{"a\x7fb": "x"}, "a\x7fb", "control character"},
		{"C1 control", Files{"a\u0085b": "x"}, "a\u0085b", "control character"},
		{"invalid UTF-8", Files{"a\xffb": "x"}, "a\xffb", "not valid UTF-8"},
		{"too long", Files{strings.Repeat("a", 256): ""}, strings.Repeat("a", 256), "256 bytes long"},
		{"duplicate after cleaning", Files{"a/b": "1", "a//b": "2"}, "a//b", `same file as "a/b"`},
		{"duplicate ./", Files{"./a": "1", "a": "2"}, "./a", `same file as "a"`},
		{"duplicate trailing slash", Files{"a/": "1", "a": "2"}, "a/", `same file as "a"`},
		{"file and folder", Files{"a": "1", "a/b": "2"}, "a/b", `"a" is a file`},
		{"file and deep folder", Files{"a/b": "1", "a/b/c/d": "2"}, "a/b/c/d", `"a/b" is a file`},
		{"empty Dockerfile", Files{"Dockerfile": ""}, "Dockerfile", "empty"},
	}
	for _, tt := range tests {
		err := Validate(tt.files, Limits{})
		if tt.reason == "" {
			if err != nil {
				t.Errorf("%s: Validate = %v, want nil", tt.name, err)
			}
			continue
		}
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: Validate = %v, want a *ValidationError", tt.name, err)
			continue
		}
		if ve.Field != "src_files" || ve.Path != tt.path && len(tt.path) <= 80 || !strings.Contains(ve.Reason, tt.reason) {
			t.Errorf("%s: Validate = %#v, want src_files path %q reason containing %q", tt.name, ve, tt.path, tt.reason)
		}
		if tt.path != "" && !strings.Contains(err.Error(), quoteShort(tt.path)) {
			t.Errorf("%s: error %q does not name the path", tt.name, err)
		}
	}
}

func TestValidateLimits(t *testing.T) {
	lim := Limits{MaxFiles: 3, MaxFile: 10, MaxTotal: 25}
	tests := []struct {
		name       string
		dockerfile string
		files      Files
		field      string
		path       string
		reason     string
	}{
		{"within", "", Files{"a": "0123456789", "b": "0123456789", "c": "01234"}, "", "", ""},
		{"too many files", "", Files{"a": "", "b": "", "c": "", "d": ""}, "src_files", "", "4 files; at most 3"},
		{"file too big", "", Files{"a": "", "big": "01234567890"}, "src_files", "big", "11 bytes; at most 10"},
		{"total too big", "", Files{"a": "0123456789", "b": "0123456789", "c": "012345"}, "src_files", "", "total 26 bytes"},
		{"dockerfile too big", "FROM scratch", Files{}, "dockerfile", "", "12 bytes; at most 10"},
		{"dockerfile counts in total", "0123456789", Files{"a": "0123456789", "b": "012345"}, "src_files", "", "total 26 bytes"},
		{"Dockerfile twice", "FROM x", Files{"Dockerfile": "FROM y"}, "dockerfile", "", "given twice"},
		{"Dockerfile file too big", "", Files{"Dockerfile": "FROM scratch"}, "src_files", "Dockerfile", "12 bytes"},
		{"dockerfile and a Dockerfile folder", "FROM x", Files{"Dockerfile/a": ""}, "src_files", "Dockerfile/a", `"Dockerfile" is a file`},
	}
	for _, tt := range tests {
		err := ValidateSource(tt.dockerfile, tt.files, lim)
		if tt.reason == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != tt.field || ve.Path != tt.path || !strings.Contains(ve.Reason, tt.reason) {
			t.Errorf("%s: ValidateSource = %v (%#v), want field %s path %q reason containing %q", tt.name, err, ve, tt.field, tt.path, tt.reason)
		}
	}
}

func TestValidateDefaults(t *testing.T) {
	big := strings.Repeat("x", DefaultMaxFile+1)
	if err := Validate(Files{"a": big}, Limits{MaxFiles: 5}); err == nil {
		t.Fatal("a zero MaxFile did not take the default")
	}
	if err := Validate(Files{"a": big[:DefaultMaxFile]}, Limits{MaxFiles: 5}); err != nil {
		t.Fatal(err)
	}
	many := Files{}
	for i := range DefaultMaxFiles + 1 {
		many[strings.Repeat("f", 1+i/200)+string(rune('a'+i%26))+string(rune('a'+i/26%26))] = ""
	}
	if err := Validate(many, Limits{}); err == nil || !strings.Contains(err.Error(), "1001 files") {
		t.Fatalf("Validate of %d files = %v", len(many), err)
	}
}

func TestValidationErrorMessage(t *testing.T) {
	err := Validate(Files{"../../etc/passwd": "x"}, Limits{})
	want := `invalid src_files path "../../etc/passwd": ".." segments are not allowed; paths must stay inside the source folder`
	if err == nil || err.Error() != want {
		t.Fatalf("got %q\nwant %q", err, want)
	}
	long := strings.Repeat("a/", 200)
	err = Validate(Files{long: ""}, Limits{})
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("error for a long path is not shortened: %q", err)
	}
}
