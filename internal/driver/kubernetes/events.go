package kubernetes

import (
	"context"
	"fmt"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// seen is what the event stream last told of one Pod (by uid): a Pod's
// updates come many times for one start or exit.
type seen struct {
	started bool
	died    bool
}

// transition returns the events a Pod's new state gives, after what was
// seen of it, and what is seen now. deleted: the Pod is gone; one that was
// running dies then (it was removed while running: killed).
func transition(was seen, p *corev1.Pod, deleted bool, now time.Time) ([]driver.Event, seen) {
	s := stateOf(p)
	ev := func(kind driver.EventKind, at time.Time) driver.Event {
		if at.IsZero() {
			at = now
		}
		return driver.Event{ContainerID: p.Name, Labels: labelsOf(p), Kind: kind, At: at}
	}
	var out []driver.Event
	if (s.running || s.exited && !s.startedAt.IsZero()) && !was.started {
		out = append(out, ev(driver.EventStart, s.startedAt))
		was.started = true
	}
	if s.exited && !was.died {
		if s.oom {
			e := ev(driver.EventOOM, s.finishedAt)
			e.OOMKilled = true
			out = append(out, e)
		}
		e := ev(driver.EventDie, s.finishedAt)
		e.ExitCode, e.OOMKilled = s.exitCode, s.oom
		out = append(out, e)
		was.died = true
	}
	if deleted && was.started && !was.died {
		e := ev(driver.EventDie, now)
		e.ExitCode = 137
		out = append(out, e)
		was.died = true
	}
	return out, was
}

// Events watches the namespace's managed Pods and tells their starts, exits
// and memory kills, from the moment of the call. A watch the API server
// ends is resumed where it stopped; one it cannot resume (its history is
// gone) ends the stream with an error, and the Host lists again.
func (d *Driver) Events(ctx context.Context) (<-chan driver.Event, <-chan error) {
	out := make(chan driver.Event, 64)
	errs := make(chan error, 1)
	go func() {
		defer close(out)
		if err := d.events(ctx, out); err != nil && ctx.Err() == nil {
			errs <- err // the caller's own end is no error
		}
		close(errs)
	}()
	return out, errs
}

func (d *Driver) events(ctx context.Context, out chan<- driver.Event) error {
	pods := d.cs.CoreV1().Pods(d.ns)
	sel := selector(map[string]string{driver.LabelManaged: "true"})
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return fmt.Errorf("kubernetes: events: %w", err)
	}
	// What runs or ended already is not news.
	state := map[types.UID]seen{}
	for i := range list.Items {
		_, state[list.Items[i].UID] = transition(seen{}, &list.Items[i], false, time.Now())
	}
	rv := list.ResourceVersion
	for {
		w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			return fmt.Errorf("kubernetes: events: %w", err)
		}
		rv, err = d.relay(ctx, w, rv, state, out)
		w.Stop()
		if err != nil {
			return err
		}
	}
}

// relay passes one watch's events on, and returns the resource version to
// resume from when the watch ends.
func (d *Driver) relay(ctx context.Context, w watch.Interface, rv string, state map[types.UID]seen, out chan<- driver.Event) (string, error) {
	for {
		select {
		case <-ctx.Done():
			return rv, ctx.Err()
		case we, open := <-w.ResultChan():
			if !open {
				return rv, nil
			}
			if we.Type == watch.Error {
				return "", fmt.Errorf("kubernetes: events: the watch failed: %v", we.Object)
			}
			p, ok := we.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			rv = p.ResourceVersion
			if we.Type == watch.Bookmark {
				continue
			}
			evs, now := transition(state[p.UID], p, we.Type == watch.Deleted, time.Now())
			if we.Type == watch.Deleted {
				delete(state, p.UID)
			} else {
				state[p.UID] = now
			}
			for _, e := range evs {
				select {
				case out <- e:
				case <-ctx.Done():
					return rv, ctx.Err()
				}
			}
		}
	}
}
