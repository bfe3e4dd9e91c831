package docker

// Tests that need no engine: spec validation, image overrides, context
// scanning.

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/hershyorg/hershy/internal/driver"
)

func validSpec() driver.ContainerSpec {
	return driver.ContainerSpec{
		Name:    "p",
		Image:   "img",
		Runtime: driver.RuntimeRunsc,
		User:    "10001:10001",
		Labels:  map[string]string{driver.LabelProgram: "p1"},
		Mounts:  []driver.Mount{{Source: "/data/p1/state", Target: "/state"}},
		Limits:  driver.Limits{MemoryBytes: 64 << 20, CPUs: 0.5, Pids: 128, LogBytes: 1 << 20},
	}
}

// testImage is an inspected image with nothing to override.
var testImage = imageFacts{ID: "sha256:" + strings.Repeat("0a", 32)}

func TestContainerConfigRefusals(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*driver.ContainerSpec)
		want   string // substring of the error; "" = accepted
	}{
		{"valid", func(s *driver.ContainerSpec) {}, ""},
		{"valid runc low pids", func(s *driver.ContainerSpec) { s.Runtime = driver.RuntimeRunc; s.Limits.Pids = 4 }, ""},
		{"empty runtime is runsc", func(s *driver.ContainerSpec) { s.Runtime = ""; s.Limits.Pids = 64 }, "minimum under runsc"},
		{"runtime io.containerd.runc.v2", func(s *driver.ContainerSpec) { s.Runtime = "io.containerd.runc.v2" }, "not allowed"},
		{"runtime kata", func(s *driver.ContainerSpec) { s.Runtime = "kata" }, "not allowed"},
		{"no image", func(s *driver.ContainerSpec) { s.Image = "" }, "no image"},
		{"user empty", func(s *driver.ContainerSpec) { s.User = "" }, "non-root"},
		{"user 0", func(s *driver.ContainerSpec) { s.User = "0" }, "non-root"},
		{"user root", func(s *driver.ContainerSpec) { s.User = "root" }, "non-root"},
		{"user 0:0", func(s *driver.ContainerSpec) { s.User = "0:0" }, "root (0)"},
		{"user 1000:0", func(s *driver.ContainerSpec) { s.User = "1000:0" }, "root (0)"},
		{"user without gid", func(s *driver.ContainerSpec) { s.User = "1000" }, "uid:gid"},
		{"user name", func(s *driver.ContainerSpec) { s.User = "app:app" }, "numeric"},
		{"user root:root", func(s *driver.ContainerSpec) { s.User = "root:root" }, "numeric"},
		{"no program label", func(s *driver.ContainerSpec) { s.Labels = nil }, "label"},
		{"pids 64 under runsc", func(s *driver.ContainerSpec) { s.Limits.Pids = 64 }, "minimum under runsc"},
		{"pids 0", func(s *driver.ContainerSpec) { s.Runtime = driver.RuntimeRunc; s.Limits.Pids = 0 }, "pids"},
		{"memory 0", func(s *driver.ContainerSpec) { s.Limits.MemoryBytes = 0 }, "memory"},
		{"cpus 0", func(s *driver.ContainerSpec) { s.Limits.CPUs = 0 }, "CPU"},
		{"cpus negative", func(s *driver.ContainerSpec) { s.Limits.CPUs = -1 }, "CPU"},
		{"log 0", func(s *driver.ContainerSpec) { s.Limits.LogBytes = 0 }, "log cap"},
		{"mount relative source", func(s *driver.ContainerSpec) { s.Mounts[0].Source = "state" }, "source"},
		{"mount unclean source", func(s *driver.ContainerSpec) { s.Mounts[0].Source = "/data/../etc" }, "source"},
		{"mount on /", func(s *driver.ContainerSpec) { s.Mounts[0].Target = "/" }, "target"},
		{"mount on /tmp", func(s *driver.ContainerSpec) { s.Mounts[0].Target = "/tmp" }, "reserved"},
		{"mount on /proc/x", func(s *driver.ContainerSpec) { s.Mounts[0].Target = "/proc/x" }, "reserved"},
		{"mount twice", func(s *driver.ContainerSpec) { s.Mounts = append(s.Mounts, s.Mounts[0]) }, "twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := validSpec()
			c.mutate(&s)
			_, _, _, err := containerConfig(s, testImage)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && err == nil:
				t.Fatalf("accepted, want an error containing %q", c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestContainerConfigContract(t *testing.T) {
	s := validSpec()
	s.Mounts = append(s.Mounts, driver.Mount{Source: "/data/secret", Target: "/secret", ReadOnly: true})
	cfg, hc, nc, err := containerConfig(s, testImage)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]bool{
		"readonly":   hc.ReadonlyRootfs,
		"runtime":    hc.Runtime == "runsc",
		"init":       hc.Init != nil && *hc.Init,
		"privileged": !hc.Privileged,
		"ports":      !hc.PublishAllPorts && len(hc.PortBindings) == 0 && len(cfg.ExposedPorts) == 0,
		"network":    hc.NetworkMode == "none" && nc == nil,
		"caps":       reflect.DeepEqual([]string(hc.CapDrop), []string{"ALL"}) && len(hc.CapAdd) == 0,
		"nnp":        reflect.DeepEqual(hc.SecurityOpt, []string{"no-new-privileges:true"}),
		"tmpfs":      hc.Tmpfs["/tmp"] == TmpfsOptions,
		"ipc":        hc.IpcMode == "none",
		"restart":    hc.RestartPolicy.Name == "no",
		"memory":     hc.Memory == 64<<20 && hc.MemorySwap == hc.Memory,
		"cpus":       hc.NanoCPUs == 5e8,
		"pids":       hc.PidsLimit != nil && *hc.PidsLimit == 128,
		"log":        hc.LogConfig.Type == "json-file" && hc.LogConfig.Config["max-size"] == "524288" && hc.LogConfig.Config["max-file"] == "2",
		"user":       cfg.User == "10001:10001",
		"labels":     cfg.Labels[driver.LabelManaged] == "true" && cfg.Labels[driver.LabelProgram] == "p1",
		"tty":        !cfg.Tty,
		"image id":   cfg.Image == testImage.ID,
		"health":     cfg.Healthcheck != nil && reflect.DeepEqual(cfg.Healthcheck.Test, []string{"NONE"}),
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("rule %s broken:\n%+v\n%+v", name, cfg, hc)
		}
	}
	if len(hc.Mounts) != 2 || hc.Mounts[0].ReadOnly || !hc.Mounts[1].ReadOnly || hc.Mounts[0].Type != "bind" {
		t.Fatalf("mounts: %+v", hc.Mounts)
	}
	s.Network = true
	_, hc, nc, err = containerConfig(s, testImage)
	if err != nil || hc.NetworkMode != EgressNetwork || nc == nil || nc.EndpointsConfig[EgressNetwork] == nil {
		t.Fatalf("network: %v %v %+v", err, hc.NetworkMode, nc)
	}
}

// TestOverrideImage: what an image carries and the Host must not honour
// (volumes, Host labels) is overridden in the container's configuration.
func TestOverrideImage(t *testing.T) {
	s := validSpec()
	s.Mounts = append(s.Mounts, driver.Mount{Source: "/data/p1/secrets", Target: "/run/secrets", ReadOnly: true})
	img := testImage
	img.Volumes = []string{"/data", "/var/cache/", "/tmp", "/tmp/sub", "/state", "/run", "/run/secrets", "/state/cache"}
	img.Labels = map[string]string{
		driver.LabelProgram:     "victim",
		driver.LabelGeneration:  "9",
		"ORG.HERSHY.Instance":   "other",
		"org.opencontainers.x":  "kept by the engine",
		"org.hershyfoo.unknown": "not the prefix",
	}
	cfg, hc, _, err := containerConfig(s, img)
	if err != nil {
		t.Fatal(err)
	}
	type cover struct {
		target string
		ro     bool
	}
	var got []cover
	for _, m := range hc.Mounts {
		if m.Type != "tmpfs" {
			continue
		}
		if m.TmpfsOptions == nil || m.TmpfsOptions.SizeBytes != 4096 || m.TmpfsOptions.Mode != 0o555 || m.Source != "" {
			t.Errorf("cover %s: %+v", m.Target, m.TmpfsOptions)
		}
		got = append(got, cover{m.Target, m.ReadOnly})
	}
	// /tmp, /state and /run/secrets are mounted by the spec already; /run
	// holds /run/secrets, so its cover stays writable for the engine (mode
	// 0555 keeps the program out).
	want := []cover{{"/data", true}, {"/run", false}, {"/state/cache", true}, {"/tmp/sub", true}, {"/var/cache", true}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("covers %v, want %v", got, want)
	}
	wantLabels := map[string]string{
		driver.LabelProgram:    "p1",
		driver.LabelManaged:    "true",
		driver.LabelGeneration: "",
		"ORG.HERSHY.Instance":  "",
	}
	if !reflect.DeepEqual(cfg.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", cfg.Labels, wantLabels)
	}

	for _, v := range []string{"data", "./data", "/", "/proc/x", "/dev", "/etc/hosts", "/sys/fs"} {
		img := testImage
		img.Volumes = []string{"/ok", v}
		if _, _, _, err := containerConfig(validSpec(), img); err == nil || !strings.Contains(err.Error(), "VOLUME") {
			t.Errorf("VOLUME %q: err = %v", v, err)
		}
	}
	if _, _, _, err := containerConfig(validSpec(), imageFacts{}); err == nil || !strings.Contains(err.Error(), "not inspected") {
		t.Errorf("an image not inspected: err = %v", err)
	}
}

func TestScanContext(t *testing.T) {
	mk := func(t *testing.T) string {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
		os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "sub", "f"), make([]byte, 1000), 0o644)
		return dir
	}
	t.Run("ok with inner symlink", func(t *testing.T) {
		dir := mk(t)
		os.Symlink("sub/f", filepath.Join(dir, "link"))
		os.Symlink("../Dockerfile", filepath.Join(dir, "sub", "up"))
		entries, _, err := scanContext(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.rel)
		}
		if want := []string{"Dockerfile", "link", "sub", "sub/f", "sub/up"}; !reflect.DeepEqual(names, want) {
			t.Fatalf("entries %v, want %v", names, want)
		}
	})
	refuse := []struct {
		name  string
		setup func(dir string)
		max   int64
		want  string
	}{
		{"absolute symlink", func(dir string) { os.Symlink("/etc/passwd", filepath.Join(dir, "pw")) }, 0, "outside"},
		{"relative escape", func(dir string) { os.Symlink("../../etc", filepath.Join(dir, "sub", "e")) }, 0, "outside"},
		{"escape through inner link", func(dir string) {
			os.Symlink(".", filepath.Join(dir, "d"))
			os.Symlink("d/d/d/../../..", filepath.Join(dir, "e"))
		}, 0, "outside"},
		{"dangling", func(dir string) { os.Symlink("nothere", filepath.Join(dir, "x")) }, 0, "does not resolve"},
		{"fifo", func(dir string) { mkfifo(filepath.Join(dir, "fifo")) }, 0, "not a regular file"},
		{"over cap", func(dir string) {}, 1000, "over the cap of 1000"},
	}
	for _, c := range refuse {
		t.Run(c.name, func(t *testing.T) {
			dir := mk(t)
			c.setup(dir)
			_, _, err := scanContext(dir, c.max)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	t.Run("at cap", func(t *testing.T) {
		if _, _, err := scanContext(mk(t), 1013); err != nil {
			t.Fatal(err)
		}
	})
}

func TestProcStart(t *testing.T) {
	a, err := procStart(os.Getpid())
	if err != nil || a == 0 {
		t.Fatalf("procStart(self) = %d, %v", a, err)
	}
	if _, err := procStart(1 << 30); err == nil {
		t.Fatal("procStart of a missing pid succeeded")
	}
}

func mkfifo(p string) {
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		panic(err)
	}
}

func TestBridgeName(t *testing.T) {
	for _, tc := range []struct {
		id   string
		opts map[string]string
		want string
	}{
		{"f3a202521b6059566c92269cd05264e4", nil, "br-f3a202521b60"},
		{"f3a202521b60", map[string]string{}, "br-f3a202521b60"},
		{"abc", nil, "br-abc"},
		{"f3a202521b6059566c92269cd05264e4", map[string]string{bridgeNameOption: EgressBridge}, EgressBridge},
	} {
		if got := bridgeName(tc.id, tc.opts); got != tc.want {
			t.Errorf("bridgeName(%q, %v) = %q, want %q", tc.id, tc.opts, got, tc.want)
		}
	}
}
