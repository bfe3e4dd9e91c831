package kubernetes

import (
	"context"
	"testing"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/drivertest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestConformance runs the driver conformance kit against the real
// cluster, under gVisor (RuntimeClass gvisor-host) and runc, in a
// namespace that enforces the restricted Pod Security level.
func TestConformance(t *testing.T) {
	d := testDriver(t)
	for _, rt := range []string{driver.RuntimeRunsc, driver.RuntimeRunc} {
		t.Run(rt, func(t *testing.T) {
			drivertest.Run(t, func(t *testing.T) drivertest.Fixture {
				return drivertest.Fixture{
					Driver:      d,
					Runtime:     rt,
					ProbeImage:  probeTag,
					ProbeBinary: probeBin,
					Prefix:      "kit-" + testRun,
					Labels:      map[string]string{driver.LabelInstance: testRun},
					// gVisor's sandbox dies with a memory kill; and the build
					// jobs this driver runs are the Docker engine's, whose OOM
					// flag under runc was once missing under load in CI (exit
					// 137 without OOMKilled) while the Docker driver's own
					// package keeps the strict check.
					UnreliableOOMFlag: true,
					RemotePids:        true,
					LogsPerRun:        true,
					FlatImages:        true,
					SampledStats:      true,
					Volume: func(t *testing.T, target string, readOnly bool) (driver.Mount, string) {
						return volume(t, d, target, readOnly)
					},
					Leftovers: func(t *testing.T, ids []string) {
						for _, id := range ids {
							if _, err := d.cs.CoreV1().Pods(namespace).Get(context.Background(), id, metav1.GetOptions{}); err == nil {
								t.Errorf("Pod %s is left", id)
							}
						}
					},
				}
			})
		})
	}
}
