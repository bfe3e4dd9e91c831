package gomod

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const fw = "github.com/hershyorg/hershy/hersh"

var opts = Options{Toolchain: "go1.26.8", Framework: fw}

const sumLines = `example.com/dep v1.2.0 h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
example.com/dep v1.2.0/go.mod h1:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=
example.com/indirect v0.1.0/go.mod h1:CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC=
`

func TestRead(t *testing.T) {
	for _, tc := range []struct {
		name, mod, sum string
		vendor         bool
		want           string // "" ok; else a substring of the error
		wantErr        error
		sums           int
	}{
		{name: "framework only", mod: "module example.com/bot\n\ngo 1.25\n\nrequire " + fw + " v0.1.0\n\nreplace " + fw + " => ../../hersh\n"},
		{name: "framework without require", mod: "module example.com/bot\n"},
		{name: "with go.sum", mod: "module example.com/bot\n\ngo 1.25\n\nrequire (\n\texample.com/dep v1.2.0\n\texample.com/indirect v0.1.0 // indirect\n)\n", sum: sumLines, sums: 3},
		{name: "missing go.sum entry", mod: "module example.com/bot\n\nrequire example.com/dep v1.2.0\n", want: "go.sum has no entry for go.mod:3: example.com/dep v1.2.0", wantErr: ErrInvalid},
		{name: "missing entry of a replacement", mod: "module example.com/bot\n\nrequire example.com/dep v1.2.0\n\nreplace example.com/dep => example.com/fork v1.0.0\n", sum: sumLines, want: "example.com/fork v1.0.0", wantErr: ErrInvalid},
		{name: "version replacement present", mod: "module example.com/bot\n\nrequire example.com/x v1.0.0\n\nreplace example.com/x v1.0.0 => example.com/dep v1.2.0\n", sum: sumLines, sums: 3},
		{name: "local replacement inside", mod: "module example.com/bot\n\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => ./lib\n"},
		{name: "local replacement outside", mod: "module example.com/bot\n\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => ../lib\n", want: "points outside", wantErr: ErrInvalid},
		{name: "absolute replacement", mod: "module example.com/bot\n\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => /etc\n", want: "points outside", wantErr: ErrInvalid},
		{name: "sneaky relative", mod: "module example.com/bot\n\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => ./a/../../x\n", want: "points outside", wantErr: ErrInvalid},
		{name: "vendor needs no go.sum", mod: "module example.com/bot\n\nrequire example.com/dep v1.2.0\n", vendor: true},
		{name: "newer go", mod: "module example.com/bot\n\ngo 1.99\n", want: "lower the go line to at most 1.26", wantErr: ErrToolchain},
		{name: "parse error", mod: "module example.com/bot\n\nrequire (\n", want: "go.mod:", wantErr: ErrInvalid},
		{name: "unknown directive", mod: "module example.com/bot\nfrobnicate x\n", want: "go.mod:2", wantErr: ErrInvalid},
		{name: "no module line", mod: "go 1.22\n", want: "no module line", wantErr: ErrInvalid},
		{name: "bad go.sum line", mod: "module m.example\n", sum: "example.com/dep v1.2.0\n", want: "go.sum:1", wantErr: ErrInvalid},
		{name: "bad go.sum version", mod: "module m.example\n", sum: "example.com/dep ../../x h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", want: "go.sum:1", wantErr: ErrInvalid},
		{name: "bad go.sum path", mod: "module m.example\n", sum: "../../etc v1.0.0 h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", want: "go.sum:1", wantErr: ErrInvalid},
		{name: "not h1", mod: "module m.example\n", sum: "example.com/dep v1.2.0 h2:xyz\n", want: "h1 hash", wantErr: ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Read([]byte(tc.mod), []byte(tc.sum), tc.vendor, opts)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %q (%v)", err, tc.want, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Sums) != tc.sums || p.Vendor != tc.vendor {
				t.Fatalf("plan %+v", p)
			}
		})
	}
}

func TestParseSumDedupAndLimit(t *testing.T) {
	s, err := parseSum([]byte(sumLines + sumLines + "\n\n"))
	if err != nil || len(s) != 3 {
		t.Fatalf("%v %v", s, err)
	}
	var b strings.Builder
	for i := 0; i <= MaxSumLines; i++ {
		fmt.Fprintf(&b, "example.com/m v1.0.%d h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", i)
	}
	if _, err := parseSum([]byte(b.String())); err == nil {
		t.Fatal("go.sum over the line limit accepted")
	}
}

func TestBuildGoMod(t *testing.T) {
	in := "module example.com/bot\n\ngo 1.25\n\nrequire " + fw + " v0.3.0\n\nreplace " + fw + " v0.3.0 => ../../hersh\n"
	out, err := BuildGoMod([]byte(in), fw, "/hersh", "1.24")
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	if strings.Contains(got, "../../hersh") || !strings.Contains(got, "go 1.25") || !strings.Contains(got, "replace "+fw+" => /hersh") || !strings.Contains(got, "require "+fw+" v0.3.0") {
		t.Fatalf("go.mod for the build:\n%s", got)
	}
	out, err = BuildGoMod([]byte("module example.com/bot\n\ngo 1.21\n"), fw, "/hersh", "1.24")
	if err != nil || !strings.Contains(string(out), "require "+fw+" v0.0.0") || !strings.Contains(string(out), "go 1.24") {
		t.Fatalf("framework not required: %s %v", out, err)
	}
}

func TestParseProxies(t *testing.T) {
	for _, tc := range []struct {
		in      string
		urls    []string
		any     []bool
		dropped []string
		bad     bool
	}{
		{in: "https://proxy.golang.org,direct", urls: []string{"https://proxy.golang.org"}, any: []bool{false}, dropped: []string{"direct"}},
		{in: "https://a.example|https://b.example/x/,off,https://c.example", urls: []string{"https://a.example", "https://b.example/x"}, any: []bool{true, false}, dropped: []string{"off,https://c.example"}},
		{in: "direct", dropped: []string{"direct"}},
		{in: "off"},
		{in: "file:///srv/goproxy", urls: []string{"file:///srv/goproxy"}, any: []bool{false}},
		{in: "ftp://x.example", bad: true},
		{in: "proxy.golang.org", bad: true},
	} {
		ps, dropped, err := ParseProxies(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q accepted", tc.in)
			}
			continue
		}
		if err != nil || len(ps) != len(tc.urls) || strings.Join(dropped, " ") != strings.Join(tc.dropped, " ") {
			t.Errorf("%q: %v %v %v", tc.in, ps, dropped, err)
			continue
		}
		for i, p := range ps {
			if p.URL.String() != tc.urls[i] || p.OnAnyError != tc.any[i] {
				t.Errorf("%q: entry %d = %v %v", tc.in, i, p.URL, p.OnAnyError)
			}
		}
	}
}
