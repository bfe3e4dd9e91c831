// Package gomod decides what a Go-source program needs from outside its own
// source, and fetches it for the build sandbox.
//
// A program's go.mod and go.sum are hostile input, and the go command reads
// them, so they are read here with the go command's own parser
// (golang.org/x/mod, which cmd/go vendors): what this package accepts is
// what the build will see. Read checks a program once, when it is stored:
//
//   - go.mod parses, its go line is no newer than the Host's toolchain, and
//     its replace directives point only at module versions or at folders
//     inside the program's source;
//   - every module it requires (after replacements, except local folders and
//     the framework) has a go.sum entry, so the build can verify what it
//     gets: a missing entry is the user's to fix ("run go mod tidy"), and is
//     reported before anything is built;
//   - a vendor/modules.txt means the build uses vendor/ and needs nothing.
//
// The framework (hersh) is never fetched: the Host gives every build its own
// copy, with a replace directive added to the build's copy of go.mod.
//
// Fetcher then downloads what go.sum lists, only through the module proxies
// the operator configured (never "direct": no version-control tool and no
// connection to a host the user picks), keeps it in a store only the Host
// writes, and lays out, per build, a read-only GOPROXY folder holding just
// that build's modules, each checked against the build's own go.sum. The
// build itself runs with no network.
package gomod

import (
	"errors"
	"fmt"
	"go/version"
	"path"
	"sort"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
)

// ErrInvalid marks a go.mod or go.sum the Host refuses (wrapped; the API
// answers 400 with the message).
var ErrInvalid = errors.New("unusable go.mod or go.sum")

// ErrToolchain marks a go.mod that needs a newer Go than the Host's.
var ErrToolchain = errors.New("the program needs a newer Go toolchain than the Host has")

// MaxSumLines bounds go.sum: each line may cost a download.
const MaxSumLines = 4000

// Sum is one go.sum line: the hash of a module's zip, or (GoMod) of its
// go.mod file alone.
type Sum struct {
	Path    string
	Version string
	GoMod   bool   // the line is "<path> <version>/go.mod <hash>"
	Hash    string // "h1:..."
}

func (s Sum) String() string {
	if s.GoMod {
		return s.Path + " " + s.Version + "/go.mod"
	}
	return s.Path + " " + s.Version
}

// Plan is what Read found: how to build the program.
type Plan struct {
	Module string // the module path
	Go     string // the go line ("" when absent)
	// Vendor: the source has vendor/modules.txt; the build uses it
	// (-mod=vendor) and fetches nothing.
	Vendor bool
	// Sums are the go.sum lines to fetch (none with Vendor), sorted.
	Sums []Sum
}

// Options tell Read about the Host.
type Options struct {
	// Toolchain is the Host's Go version ("go1.26.8"); a go line newer
	// than it is refused. Empty: not checked.
	Toolchain string
	// Framework is the module path the Host provides itself.
	Framework string
}

// Read checks a program's go.mod and go.sum (goSum may be empty) and
// returns its plan. Errors wrap ErrInvalid or ErrToolchain and say which
// file and line and what to do.
func Read(goMod, goSum []byte, hasVendor bool, opts Options) (*Plan, error) {
	mf, err := modfile.Parse("go.mod", goMod, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if mf.Module == nil || mf.Module.Mod.Path == "" {
		return nil, fmt.Errorf("%w: go.mod has no module line", ErrInvalid)
	}
	p := &Plan{Module: mf.Module.Mod.Path, Vendor: hasVendor}
	if mf.Go != nil {
		p.Go = mf.Go.Version
		if err := checkToolchain(p.Go, opts.Toolchain); err != nil {
			return nil, err
		}
	}
	replaced := map[string]module.Version{} // old path (any version) or path@version -> new
	for _, r := range mf.Replace {
		if r.Old.Path == opts.Framework {
			continue // the Host's copy wins
		}
		if r.New.Version == "" {
			if err := checkLocal(r.Syntax.Start.Line, r.Old.Path, r.New.Path); err != nil {
				return nil, err
			}
		}
		key := r.Old.Path
		if r.Old.Version != "" {
			key += "@" + r.Old.Version
		}
		replaced[key] = r.New
	}
	if hasVendor {
		return p, nil
	}
	sums, err := parseSum(goSum)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, s := range sums {
		have[s.Path+"@"+s.Version] = true
	}
	var missing []string
	for _, r := range mf.Require {
		if r.Mod.Path == opts.Framework {
			continue
		}
		target, ok := replaced[r.Mod.Path+"@"+r.Mod.Version]
		if !ok {
			target, ok = replaced[r.Mod.Path]
		}
		if !ok {
			target = r.Mod
		}
		if target.Version == "" {
			continue // a folder of the program's own source
		}
		if !have[target.Path+"@"+target.Version] {
			missing = append(missing, fmt.Sprintf("go.mod:%d: %s %s", r.Syntax.Start.Line, target.Path, target.Version))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: go.sum has no entry for %s; run `go mod tidy` and send go.sum with the source (the Host verifies every dependency against it)",
			ErrInvalid, strings.Join(missing, ", "))
	}
	p.Sums = sums
	return p, nil
}

// checkToolchain refuses a go line newer than the Host's toolchain: builds
// run with GOTOOLCHAIN=local and cannot download another.
func checkToolchain(goLine, have string) error {
	if !version.IsValid("go" + goLine) {
		return fmt.Errorf("%w: go.mod has an invalid go version %q", ErrInvalid, goLine)
	}
	if have == "" || !version.IsValid(have) {
		return nil
	}
	if version.Compare("go"+goLine, have) > 0 {
		return fmt.Errorf("%w: go.mod says go %s, but the Host's toolchain is %s and toolchain downloads are disabled; lower the go line to at most %s",
			ErrToolchain, goLine, have, strings.TrimPrefix(version.Lang(have), "go"))
	}
	return nil
}

// checkLocal refuses a replace directive whose target folder is outside the
// program's source: the build sees nothing else, and an error saying so
// later would be less clear.
func checkLocal(line int, old, target string) error {
	clean := path.Clean(strings.ReplaceAll(target, `\`, "/"))
	if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") || strings.HasPrefix(target, "/") {
		return fmt.Errorf("%w: go.mod:%d: replace %s => %s points outside the program's source; only folders inside it are allowed", ErrInvalid, line, old, target)
	}
	return nil
}

// parseSum reads go.sum as the go command does: three fields a line, blank
// lines ignored. Paths and versions are checked (they become file names and
// URLs); the hash must be an h1 hash.
func parseSum(b []byte) ([]Sum, error) {
	var out []Sum
	seen := map[string]bool{}
	lines := strings.Split(string(b), "\n")
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(out) >= MaxSumLines {
			return nil, fmt.Errorf("%w: go.sum has more than %d lines", ErrInvalid, MaxSumLines)
		}
		bad := func(why string) error {
			return fmt.Errorf("%w: go.sum:%d: %s", ErrInvalid, i+1, why)
		}
		if len(f) != 3 {
			return nil, bad("want three fields: module, version, hash")
		}
		s := Sum{Path: f[0], Version: f[1], Hash: f[2]}
		if v, ok := strings.CutSuffix(s.Version, "/go.mod"); ok {
			s.Version, s.GoMod = v, true
		}
		if err := module.Check(s.Path, s.Version); err != nil {
			return nil, bad(err.Error())
		}
		if !strings.HasPrefix(s.Hash, "h1:") || len(s.Hash) != len("h1:")+44 {
			return nil, bad("the hash is not an h1 hash")
		}
		if seen[s.String()] {
			continue // a repeated line (go.sum may hold one twice after a merge)
		}
		seen[s.String()] = true
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// BuildGoMod returns the go.mod the build uses: the program's, with the
// framework required (when the program imports it without a require line)
// and replaced by dir, the Host's copy as the build sandbox sees it. Other
// replace directives of the framework are dropped. The go line is raised to
// minGo (the framework's own) when lower: the go command would refuse a
// dependency newer than the main module, and the program did not choose
// this one.
func BuildGoMod(goMod []byte, framework, dir, minGo string) ([]byte, error) {
	mf, err := modfile.Parse("go.mod", goMod, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if minGo != "" && (mf.Go == nil || version.Compare("go"+mf.Go.Version, "go"+minGo) < 0) {
		if err := mf.AddGoStmt(minGo); err != nil {
			return nil, err
		}
	}
	for _, r := range mf.Replace {
		if r.Old.Path == framework {
			if err := mf.DropReplace(r.Old.Path, r.Old.Version); err != nil {
				return nil, err
			}
		}
	}
	required := false
	for _, r := range mf.Require {
		required = required || r.Mod.Path == framework
	}
	if !required {
		if err := mf.AddRequire(framework, "v0.0.0"); err != nil {
			return nil, err
		}
	}
	if err := mf.AddReplace(framework, "", dir, ""); err != nil {
		return nil, err
	}
	mf.Cleanup()
	return mf.Format()
}
