// Package testenv is shared set-up for tests that need the real container
// engine. Outside CI such tests skip when no engine answers; in CI (the CI
// variable set) a missing engine fails them, so they never skip silently.
package testenv

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/builder"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/docker"
)

// Engine returns a Docker driver whose engine has runtime rt registered.
func Engine(t testing.TB, rt string) *docker.Driver {
	t.Helper()
	d, err := docker.New()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = d.Check(ctx, rt)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the engine with runtime %s is required in CI: %v (run scripts/setup-engine.sh)", rt, err)
		}
		t.Skipf("no engine with runtime %s: %v (run scripts/setup-engine.sh)", rt, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// SharedBuildCache is the shared (read-only to programs' builds) cache
// layer that every test Host on this machine uses, so that each test's
// fresh data directory does not pay for a cold compile of the standard
// library and the framework inside the build sandbox: the first Host warms
// it (once per toolchain and framework version), the others find it warm.
const SharedBuildCache = "/var/cache/hershy-test/go-shared"

// GoCaches returns builder options for tests: the machine's shared build
// cache layer.
func GoCaches(t testing.TB) builder.Options {
	t.Helper()
	return builder.Options{SharedCacheDir: SharedBuildCache}
}

// WriteFiles writes files (slash paths relative to the folder, parents
// created as needed) into a new temporary folder and returns it.
func WriteFiles(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Contract is what CheckContract expects of a program's container.
type Contract struct {
	Runtime  string
	StateDir string        // the host folder mounted at /state ("": any)
	Limits   driver.Limits // memory and CPUs as the Host set them
}

// CheckContract reads docker inspect of a container the Host launched and
// asserts the sandbox contract (the driver's own tests probe it from the
// inside as well).
func CheckContract(t testing.TB, d *docker.Driver, cid string, want Contract) {
	t.Helper()
	ins, err := d.Client().ContainerInspect(context.Background(), cid)
	if err != nil {
		t.Fatal(err)
	}
	hc := ins.HostConfig
	check := func(ok bool, what string, got any) {
		t.Helper()
		if !ok {
			t.Errorf("contract of %.12s: %s (got %v)", cid, what, got)
		}
	}
	check(hc.Runtime == want.Runtime, "runtime "+want.Runtime, hc.Runtime)
	check(hc.ReadonlyRootfs, "read-only root filesystem", hc.ReadonlyRootfs)
	check(string(hc.NetworkMode) == "none", "network none", hc.NetworkMode)
	check(len(hc.PortBindings) == 0 && !hc.PublishAllPorts, "no published ports", hc.PortBindings)
	check(len(hc.CapDrop) == 1 && strings.EqualFold(hc.CapDrop[0], "ALL") && len(hc.CapAdd) == 0, "all capabilities dropped", hc.CapDrop)
	check(slices.Contains(hc.SecurityOpt, "no-new-privileges:true"), "no-new-privileges", hc.SecurityOpt)
	check(!hc.Privileged, "not privileged", hc.Privileged)
	check(hc.Init != nil && *hc.Init, "an init process", hc.Init)
	check(ins.Config.User == "65532:65532", "non-root user", ins.Config.User)
	check(hc.PidsLimit != nil && *hc.PidsLimit >= 64, "a pids limit", hc.PidsLimit)
	check(hc.Memory == want.Limits.MemoryBytes && hc.NanoCPUs == int64(want.Limits.CPUs*1e9), "memory and CPU limits", []int64{hc.Memory, hc.NanoCPUs})
	check(strings.Contains(hc.Tmpfs["/tmp"], "noexec"), "noexec tmpfs at /tmp", hc.Tmpfs)
	check(hc.LogConfig.Config["max-size"] != "", "capped container logs", hc.LogConfig.Config)
	writable := 0
	for _, m := range ins.Mounts {
		if m.RW && m.Type != "tmpfs" { // a tmpfs covering an image VOLUME is root-owned, mode 0555
			writable++
			check(m.Destination == "/state" && (want.StateDir == "" || m.Source == want.StateDir), "/state is the only writable mount", m)
		}
		check(m.Type != "volume", "no volume (an image VOLUME is covered)", m)
	}
	check(writable == 1, "exactly one writable mount", writable)
	check(len(ins.NetworkSettings.Ports) == 0, "no exposed ports", ins.NetworkSettings.Ports)
	check(ins.Config.Healthcheck != nil && slices.Equal(ins.Config.Healthcheck.Test, []string{"NONE"}) && ins.State.Health == nil, "health check disabled", ins.Config.Healthcheck)
	// The labels the Host sets; any other under its prefix came from the
	// image and must have been blanked.
	hostLabels := []string{driver.LabelManaged, driver.LabelProgram, driver.LabelBuild, driver.LabelInstance, driver.LabelGeneration}
	for k, v := range ins.Config.Labels {
		if strings.HasPrefix(strings.ToLower(k), driver.LabelPrefix) {
			check(v == "" || slices.Contains(hostLabels, k), "no Host label from the image ("+k+")", v)
		}
	}
}
