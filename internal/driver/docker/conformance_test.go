package docker

import (
	"context"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/drivertest"
)

// TestConformance runs the driver conformance kit (package drivertest),
// which the fake and any later driver pass too, against the engine under
// runc and runsc: the probe image of this package, this run's labels, and
// the harness's check that a removed container leaves no process behind.
func TestConformance(t *testing.T) {
	d := newDriver(t)
	for _, rt := range []string{driver.RuntimeRunc, driver.RuntimeRunsc} {
		t.Run(rt, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := d.Check(ctx, rt); err != nil {
				if inCI() {
					t.Fatalf("CI is set and runtime %s is missing: %v", rt, err)
				}
				t.Skipf("runtime %s missing: %v", rt, err)
			}
			probeImage(t, d)
			drivertest.Run(t, func(t *testing.T) drivertest.Fixture {
				return drivertest.Fixture{
					Driver:            d,
					Runtime:           rt,
					ProbeImage:        probeTag,
					ProbeBinary:       probeBin,
					Prefix:            "hershy-kit-" + testRun,
					Labels:            map[string]string{driver.LabelInstance: testRun},
					UnreliableOOMFlag: rt == driver.RuntimeRunsc, // see TestEvents
					Leftovers:         checkNoLeftovers,
				}
			})
		})
	}
}
