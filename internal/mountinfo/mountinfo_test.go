package mountinfo

import "testing"

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		"/plain/path":            "/plain/path",
		`/with\040space`:         "/with space",
		`/tab\011and\012newline`: "/tab\tand\nnewline",
		`/back\134slash`:         `/back\slash`,
		`/not\08octal`:           `/not\08octal`,
		`/short\04`:              `/short\04`,
		`/end\`:                  `/end\`,
		`\040`:                   " ",
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
