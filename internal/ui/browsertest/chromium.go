package browsertest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// names are the executables Chromium is found as on PATH: Debian's
// package installs /usr/bin/chromium.
var names = []string{"chromium", "chromium-browser"}

// FindChromium returns the path of the Chromium to use: $HERSHY_CHROMIUM
// when set (it must exist), else the first of chromium and
// chromium-browser on PATH.
func FindChromium() (string, error) {
	if p := os.Getenv("HERSHY_CHROMIUM"); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("HERSHY_CHROMIUM=%s: %w", p, err)
		}
		return path, nil
	}
	for _, n := range names {
		if path, err := exec.LookPath(n); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("no %s on PATH", strings.Join(names, " or "))
}

// Chromium returns the path of Chromium for a test. Without one, the test
// is skipped, or, in CI (CI set), fails: browser tests must not skip
// silently there.
func Chromium(t testing.TB) string {
	t.Helper()
	path, err := FindChromium()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("browsertest: Chromium is required in CI: %v (run scripts/setup-browser.sh)", err)
		}
		t.Skipf("browsertest: no Chromium: %v (run scripts/setup-browser.sh)", err)
	}
	return path
}

// CheckLoopback returns an error unless rawURL is an http(s) URL of a
// loopback host (127.0.0.0/8, ::1 or localhost) or about:blank. Tests
// send traffic to the machine itself only.
func CheckLoopback(rawURL string) error {
	if rawURL == "about:blank" {
		return nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("refusing to navigate to %q: %v", rawURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("refusing to navigate to %q: only http and https on loopback", rawURL)
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing to navigate to %q: %q is not a loopback address", rawURL, host)
}
