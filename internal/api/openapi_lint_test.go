package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The linters' project: the versions they are pinned at (package-lock.json)
// and their configurations (.spectral.yaml, redocly.yaml and its ignore
// file, each exception there with its reason). scripts/setup-lint.sh
// installs them.
const lintProject = "../../scripts/lint"

// TestOpenAPILint runs Spectral (spectral:oas) and Redocly CLI (recommended)
// on openapi.json: any problem, of any severity, fails. So that a linter
// that checks nothing (a wrong ruleset, a broken install) cannot pass, each
// must also find the problem in a copy of the description that lacks an
// operationId. Without the linters the test skips, or fails in CI.
func TestOpenAPILint(t *testing.T) {
	bin := lintBin(t)
	doc, err := filepath.Abs("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	broken := withoutOperationID(t)
	t.Run("spectral", func(t *testing.T) {
		if problems := spectral(t, bin, doc); len(problems) > 0 {
			t.Errorf("spectral: %d problems in openapi.json:\n%s", len(problems), strings.Join(problems, "\n"))
		}
		if problems := spectral(t, bin, broken); !mentions(problems, "operation-operationId") {
			t.Errorf("spectral did not see an operation without operationId: %q", problems)
		}
	})
	t.Run("redocly", func(t *testing.T) {
		if problems := redocly(t, bin, doc); len(problems) > 0 {
			t.Errorf("redocly: %d problems in openapi.json:\n%s", len(problems), strings.Join(problems, "\n"))
		}
		if problems := redocly(t, bin, broken); !mentions(problems, "operation-operationId") {
			t.Errorf("redocly did not see an operation without operationId: %q", problems)
		}
	})
}

// lintBin returns the node_modules/.bin folder that setup-lint.sh filled
// from the current lock file. Missing or stale: the test skips, or in CI
// fails.
func lintBin(t *testing.T) string {
	t.Helper()
	missing := func(format string, args ...any) string {
		msg := fmt.Sprintf(format, args...) + " (run scripts/setup-lint.sh)"
		if os.Getenv("CI") != "" {
			t.Fatalf("the OpenAPI linters are required in CI: %s", msg)
		}
		t.Skip(msg)
		return ""
	}
	if _, err := exec.LookPath("node"); err != nil {
		return missing("node is not on PATH")
	}
	lock, err := os.ReadFile(filepath.Join(lintProject, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	var tried []string
	for _, dir := range lintDirs() {
		stamp, err := os.ReadFile(filepath.Join(dir, ".installed"))
		if err != nil {
			tried = append(tried, dir+": not installed")
			continue
		}
		if strings.TrimSpace(string(stamp)) != want {
			tried = append(tried, dir+": installed from another package-lock.json")
			continue
		}
		return filepath.Join(dir, "node_modules", ".bin")
	}
	return missing("no install of the linters pinned by scripts/lint/package-lock.json: %s", strings.Join(tried, "; "))
}

// lintDirs are where setup-lint.sh may have installed the linters, in the
// order it chooses them.
func lintDirs() []string {
	if d := os.Getenv("HERSHY_LINT_DIR"); d != "" {
		return []string{d}
	}
	dirs := []string{"/var/cache/hershy-test/lint"}
	if c := os.Getenv("XDG_CACHE_HOME"); c != "" {
		dirs = append(dirs, filepath.Join(c, "hershy-test", "lint"))
	} else if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(h, ".cache", "hershy-test", "lint"))
	}
	return dirs
}

// spectral lints doc and returns its results, one line each.
func spectral(t *testing.T, bin, doc string) []string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "spectral.json")
	// The exit status is 1 when there are results: the report says what.
	_, stderr, _ := runLinterOut(t, filepath.Join(bin, "spectral"), "lint", "--quiet", "--format", "json", "--output", out,
		"--fail-severity", "hint", "--ruleset", filepath.Join(lintProject, ".spectral.yaml"), doc)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("spectral wrote no report: %v\n%s", err, stderr)
	}
	var results []struct {
		Code     string `json:"code"`
		Message  string `json:"message"`
		Path     []any  `json:"path"`
		Severity int    `json:"severity"`
		Range    struct {
			Start struct{ Line int } `json:"start"`
		} `json:"range"`
	}
	if err := json.Unmarshal(b, &results); err != nil {
		t.Fatalf("spectral's report: %v\n%s\n%s", err, b, stderr)
	}
	var lines []string
	for _, r := range results {
		lines = append(lines, fmt.Sprintf("  line %d: %s (severity %d) at %v: %s", r.Range.Start.Line+1, r.Code, r.Severity, r.Path, r.Message))
	}
	return lines
}

// redocly lints doc and returns its problems, one line each (the ones its
// ignore file accepts are not problems).
func redocly(t *testing.T, bin, doc string) []string {
	t.Helper()
	stdout, stderr, _ := runLinterOut(t, filepath.Join(bin, "redocly"), "lint", "--format", "json",
		"--config", filepath.Join(lintProject, "redocly.yaml"), doc)
	var report struct {
		Totals struct {
			Errors, Warnings int
		} `json:"totals"`
		Problems []struct {
			RuleID   string `json:"ruleId"`
			Severity string `json:"severity"`
			Message  string `json:"message"`
			Location []struct {
				Pointer string `json:"pointer"`
				Start   struct{ Line int }
			} `json:"location"`
		} `json:"problems"`
	}
	if err := json.Unmarshal(stdout, &report); err != nil {
		t.Fatalf("redocly's report: %v\n%s\n%s", err, stdout, stderr)
	}
	var lines []string
	for _, p := range report.Problems {
		where := ""
		if len(p.Location) > 0 {
			where = fmt.Sprintf("line %d, %s", p.Location[0].Start.Line, p.Location[0].Pointer)
		}
		lines = append(lines, fmt.Sprintf("  %s: %s (%s): %s", where, p.RuleID, p.Severity, p.Message))
	}
	if n := report.Totals.Errors + report.Totals.Warnings; n != len(lines) {
		t.Errorf("redocly counts %d problems and lists %d", n, len(lines))
	}
	return lines
}

// runLinterOut runs a linter with telemetry and update checks off.
func runLinterOut(t *testing.T, name string, args ...string) (stdout, stderr []byte, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_COLOR=1")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish in time: %s", filepath.Base(name), e.Bytes())
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("%s: %v", filepath.Base(name), err)
	}
	return o.Bytes(), e.Bytes(), err
}

// withoutOperationID writes a copy of the description whose GET /healthz
// has no operationId, and returns its path.
func withoutOperationID(t *testing.T) string {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(openapiJSON, &doc); err != nil {
		t.Fatal(err)
	}
	get := doc["paths"].(map[string]any)["/healthz"].(map[string]any)["get"].(map[string]any)
	delete(get, "operationId")
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "openapi.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func mentions(problems []string, rule string) bool {
	for _, p := range problems {
		if strings.Contains(p, " "+rule+" ") {
			return true
		}
	}
	return false
}
