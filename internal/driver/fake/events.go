package fake

import (
	"context"
	"sync"

	"github.com/hershyorg/hershy/internal/driver"
)

const (
	eventStart = driver.EventStart
	eventDie   = driver.EventDie
	eventOOM   = driver.EventOOM
)

// subscription is one Events stream. The engine never waits for a reader:
// events queue here, and a goroutine per stream hands them out.
type subscription struct {
	mu    sync.Mutex
	queue []driver.Event
	err   error
	wake  chan struct{} // a token when the queue grew
	quit  chan struct{} // closed when the stream ends (err says why)
	ended bool
}

func (s *subscription) push(ev driver.Event) {
	s.mu.Lock()
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// end ends the stream with err (nil: quietly). Events not yet handed out
// are lost, as those in flight on a broken connection are.
func (s *subscription) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		s.ended, s.err = true, err
		close(s.quit)
	}
}

func (s *subscription) take() []driver.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

// emitLocked sends an event of c to every stream, if c is managed.
func (d *Driver) emitLocked(c *container, kind driver.EventKind, code int) {
	if c.labels[driver.LabelManaged] != "true" {
		return
	}
	ev := driver.Event{ContainerID: c.id, Labels: cloneMap(c.labels), Kind: kind, At: now()}
	switch kind {
	case eventDie:
		ev.ExitCode = code
	case eventOOM:
		ev.OOMKilled = true
	}
	for s := range d.subs {
		s.push(ev)
	}
}

// Events streams start, die (with the exit code) and oom events of managed
// containers from the moment of the call, in the order they happened. Both
// channels are closed when ctx ends (no error), when the engine dies (its
// error first: it wraps ErrEngineDown), or at Close (ErrClosed).
func (d *Driver) Events(ctx context.Context) (<-chan driver.Event, <-chan error) {
	out := make(chan driver.Event)
	errc := make(chan error, 1)
	call := Call{Method: "Events"}
	_, err := d.begin(ctx, call)
	s := &subscription{wake: make(chan struct{}, 1), quit: make(chan struct{})}
	if err == nil {
		d.mu.Lock()
		if err = d.usableLocked("Events"); err == nil {
			d.subs[s] = struct{}{}
			d.wg.Add(1)
		}
		d.mu.Unlock()
	}
	if err != nil {
		if ctx.Err() == nil {
			errc <- err
		}
		close(out)
		close(errc)
		return out, errc
	}
	go func() {
		defer d.wg.Done()
		defer close(errc)
		defer close(out)
		defer func() {
			d.mu.Lock()
			delete(d.subs, s)
			d.mu.Unlock()
		}()
		for {
			for _, ev := range s.take() {
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				case <-s.quit:
					s.fail(errc)
					return
				}
			}
			select {
			case <-s.wake:
			case <-ctx.Done():
				return
			case <-s.quit:
				s.fail(errc)
				return
			}
		}
	}()
	return out, errc
}

func (s *subscription) fail(errc chan<- error) {
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		errc <- err
	}
}
