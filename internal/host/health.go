package host

import (
	"context"
	"errors"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
)

// The Host's own health: whether the engine answers and whether the
// programs' runtime is there. It is checked every Options.HealthEvery and
// at once when the engine's event stream breaks, so /healthz, the metrics
// and the dashboard say within seconds that programs cannot start, and
// that they can again.

// DefaultHealthEvery is the default of Options.HealthEvery.
const DefaultHealthEvery = 10 * time.Second

// healthTimeout bounds one check: an engine that does not answer within it
// counts as down.
const healthTimeout = 5 * time.Second

// Health is the result of the Host's last check of what it depends on.
type Health struct {
	Engine  Component
	Runtime Component // the programs' runtime; not checked while the engine is down
	// CheckedAt is when the last check ended (zero before the first).
	CheckedAt time.Time
}

// OK reports whether programs can run: the engine answers and has the runtime.
func (hl Health) OK() bool { return hl.Engine.OK && hl.Runtime.OK }

// Component is one dependency's state.
type Component struct {
	Name string
	OK   bool
	// Problem says what is wrong in words an operator can act on ("" when
	// OK); the engine's own error is in the Host's log.
	Problem string
	// Since is when the component entered this state, as far as the Host
	// saw (its first check, or the check that saw the change).
	Since time.Time
}

// Health returns the result of the last check.
func (h *Host) Health() Health {
	h.healthMu.Lock()
	defer h.healthMu.Unlock()
	return h.health
}

// checkHealth asks the engine now and records the answer, logging each
// change of a component's state.
func (h *Host) checkHealth(ctx context.Context) Health {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	engine := Component{Name: "engine", OK: true}
	runtime := Component{Name: h.opts.Runtime, OK: true}
	engineErr := h.driver.Check(ctx)
	var runtimeErr error
	if engineErr != nil {
		engine.OK, engine.Problem = false, "the container engine does not answer: no program can start or stop, and running programs go on unwatched"
		runtime.OK, runtime.Problem = false, "unknown while the engine does not answer"
	} else if runtimeErr = h.driver.Check(ctx, h.opts.Runtime); runtimeErr != nil {
		runtime.OK = false
		runtime.Problem = "the runtime " + h.opts.Runtime + " cannot run containers: no program can start; running ones go on"
		if !errors.Is(runtimeErr, driver.ErrRuntimeMissing) {
			runtime.Problem = "the runtime " + h.opts.Runtime + " could not be checked"
		}
	}
	now := time.Now()
	h.healthMu.Lock()
	prev := h.health
	for _, c := range []struct {
		next *Component
		prev Component
		err  error
	}{{&engine, prev.Engine, engineErr}, {&runtime, prev.Runtime, runtimeErr}} {
		c.next.Since = now
		if !prev.CheckedAt.IsZero() && c.prev.OK == c.next.OK {
			c.next.Since = c.prev.Since
			continue
		}
		switch {
		case !c.next.OK:
			h.log.Error("health: "+c.next.Name+" is down", "problem", c.next.Problem, "err", c.err)
		case !prev.CheckedAt.IsZero():
			h.log.Info("health: " + c.next.Name + " is back")
		}
	}
	h.health = Health{Engine: engine, Runtime: runtime, CheckedAt: now}
	hl := h.health
	h.healthMu.Unlock()
	return hl
}

// healthLoop checks every Options.HealthEvery, and at once when asked
// (h.healthNow: the engine's event stream broke or came back).
func (h *Host) healthLoop() {
	defer h.wg.Done()
	t := time.NewTimer(h.opts.HealthEvery)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		case <-h.healthNow:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		h.checkHealth(h.ctx)
		t.Reset(h.opts.HealthEvery)
	}
}

// recheckHealth asks healthLoop for a check now (one pending is enough).
func (h *Host) recheckHealth() {
	select {
	case h.healthNow <- struct{}{}:
	default:
	}
}
