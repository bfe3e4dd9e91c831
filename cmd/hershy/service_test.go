package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit: the shipped unit passes systemd-analyze verify with no
// word said (an unknown or misspelt option is only a warning there), with
// its binary's path pointed at an executable of this machine. The unit
// keeps out of mount namespaces: the Host's /state mounts must be the
// engine's too.
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is required in CI (Debian's systemd package)")
		}
		t.Skip("no systemd-analyze")
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "init", "systemd", "hershy.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, opt := range []string{"ProtectSystem=", "ProtectHome=", "PrivateTmp=", "PrivateDevices=", "ReadWritePaths=", "ProtectControlGroups=", "ProtectKernelTunables=", "MountFlags="} {
		if strings.Contains(unit, "\n"+opt) {
			t.Errorf("the unit sets %s: the service would get its own mount namespace, and /state mounts would not reach the engine", opt)
		}
	}
	for _, want := range []string{"KillMode=process", "ExecReload=/bin/kill -HUP $MAINPID", "NoNewPrivileges=yes", "--config /etc/hershy/serve.json"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %s", want)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "hershy.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/hershy", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
