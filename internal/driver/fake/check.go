package fake

import (
	"context"
	"fmt"
	"strings"

	"github.com/hershyorg/hershy/internal/driver"
)

// Check answers as the Docker driver does: ErrEngineDown (wrapped) while
// the engine is crashed, driver.ErrRuntimeMissing for a runtime other
// than runsc and runc or one BreakRuntime took away.
func (d *Driver) Check(ctx context.Context, runtimes ...string) error {
	call := Call{Method: "Check", Ref: strings.Join(runtimes, ",")}
	h, err := d.begin(ctx, call)
	if err != nil {
		return err
	}
	d.mu.Lock()
	for _, rt := range runtimes {
		if (rt != driver.RuntimeRunsc && rt != driver.RuntimeRunc) || d.broken[rt] {
			err = fmt.Errorf("fake: check: %w: %q", driver.ErrRuntimeMissing, rt)
			break
		}
	}
	d.mu.Unlock()
	return end(ctx, h, call, err)
}

// BreakRuntime takes runtime rt away, as uninstalling gVisor does: Check
// says so and containers under it no longer start; running ones go on.
// FixRuntime brings it back.
func (d *Driver) BreakRuntime(rt string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.broken == nil {
		d.broken = map[string]bool{}
	}
	d.broken[rt] = true
}

// FixRuntime undoes BreakRuntime.
func (d *Driver) FixRuntime(rt string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.broken, rt)
}
