package host

import (
	"context"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/lifecycle"
)

// eventLoop follows the engine's event stream (no polling) and routes
// container exits to their programs' supervisors. If the stream breaks it
// re-subscribes and re-checks every program's container, so an exit during
// the gap is not lost.
func (h *Host) eventLoop(events <-chan driver.Event, errs <-chan error) {
	defer h.wg.Done()
	for {
		for ev := range events {
			h.onEvent(ev)
		}
		select {
		case <-h.ctx.Done():
			return
		case err := <-errs:
			if err != nil {
				h.log.Warn("engine event stream ended; re-subscribing", "err", err)
			}
		default:
		}
		h.breaks.Add(1)
		h.recheckHealth() // the engine may be gone: say so now, not in a few seconds
		select {
		case <-h.ctx.Done():
			return
		case <-time.After(time.Second):
		}
		events, errs = h.driver.Events(h.ctx)
		h.recheck()
	}
}

func (h *Host) onEvent(ev driver.Event) {
	pid := ev.Labels[driver.LabelProgram]
	if pid == "" || ev.Labels[driver.LabelInstance] != h.instance {
		return
	}
	switch ev.Kind {
	case driver.EventOOM:
		h.mu.Lock()
		h.oom[ev.ContainerID] = true
		h.mu.Unlock()
	case driver.EventDie:
		h.mu.Lock()
		oom := h.oom[ev.ContainerID] || ev.OOMKilled
		delete(h.oom, ev.ContainerID)
		h.mu.Unlock()
		if !oom { // the engine's inspect is authoritative when the container is still there
			if info, err := h.driver.InspectContainer(h.ctx, ev.ContainerID); err == nil {
				oom = info.OOMKilled
			}
		}
		h.deliver(pid, lifecycle.Exited{ContainerID: ev.ContainerID, ExitCode: ev.ExitCode, OOMKilled: oom, At: ev.At})
	}
}

func (h *Host) deliver(pid string, ev lifecycle.Event) {
	s, err := h.sup(pid)
	if err != nil {
		return // deleted meanwhile
	}
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	if err := s.Notify(ctx, ev); err != nil && h.ctx.Err() == nil {
		h.log.Warn("delivering an engine event", "program", pid, "err", err)
	}
}

// recheck reports exits that happened while the event stream was down.
func (h *Host) recheck() {
	h.mu.Lock()
	ids := make(map[string]string, len(h.rows))
	for id, r := range h.rows {
		if r.ContainerID != "" {
			ids[id] = r.ContainerID
		}
	}
	h.mu.Unlock()
	for pid, cid := range ids {
		info, err := h.driver.InspectContainer(h.ctx, cid)
		if err != nil || info.Running {
			continue
		}
		h.deliver(pid, lifecycle.Exited{ContainerID: cid, ExitCode: info.ExitCode, OOMKilled: info.OOMKilled, At: info.FinishedAt})
	}
}
