package fake_test

import (
	"testing"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/drivertest"
	"github.com/hershyorg/hershy/internal/driver/fake"
)

// probeFixture is the kit's fixture on a fresh fake engine holding the
// probe image.
func probeFixture(rt string, inBubble bool) func(t *testing.T) drivertest.Fixture {
	return func(t *testing.T) drivertest.Fixture {
		d := fake.New(fake.Options{})
		t.Cleanup(func() { d.Close() })
		const probe = "drivertest-probe:latest"
		d.AddImage(probe, nil)
		d.SetProgram(probe, fake.Probe)
		return drivertest.Fixture{Driver: d, Runtime: rt, ProbeImage: probe, Prefix: "kit", Parallel: !inBubble}
	}
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
