package fake_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/drivertest"
	"github.com/hershyorg/hershy/internal/driver/fake"
)

// probeFixture is the kit's fixture on a fresh fake engine holding the
// probe image.
func probeFixture(rt string, inBubble bool) func(t *testing.T) drivertest.Fixture {
	return func(t *testing.T) drivertest.Fixture {
		// Every image runs the probe: the kit's own, and those it loads
		// from tarballs under tags it makes up.
		d := fake.New(fake.Options{Program: fake.Probe})
		t.Cleanup(func() { d.Close() })
		const probe = "drivertest-probe:latest"
		d.AddImage(probe, nil)
		d.SetProgram(probe, fake.Probe) // for its jobs too
		return drivertest.Fixture{Driver: d, Runtime: rt, ProbeImage: probe, ProbeBinary: probeBinary(t), Prefix: "kit", Parallel: !inBubble}
	}
}

// probeBinary is the file the kit puts into the images it loads: any
// bytes do, as the fake runs fake.Probe for them.
func probeBinary(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "probe")
	if err := os.WriteFile(p, []byte("\x7fELF the fake's probe"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

var runtimes = []string{driver.RuntimeRunc, driver.RuntimeRunsc}

// TestConformance: the fake keeps the driver contract, on the machine's
// clock.
func TestConformance(t *testing.T) {
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) { drivertest.Run(t, probeFixture(rt, false)) })
	}
}

// TestConformanceInBubbles: the same checks inside testing/synctest
// bubbles, on the bubble's clock; each bubble's end also proves that every
// goroutine the fake started has ended.
func TestConformanceInBubbles(t *testing.T) {
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) { drivertest.RunSynctest(t, probeFixture(rt, true)) })
	}
}
