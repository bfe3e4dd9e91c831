package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/hershyorg/hershy/internal/driver"
)

// engineAttributes are event attributes the engine adds next to the
// container's labels.
var engineAttributes = map[string]bool{"image": true, "name": true, "exitCode": true, "signal": true, "execDuration": true}

// Events streams start, die and oom events of containers labelled
// LabelManaged=true. The subscription starts at the moment of the call (the
// engine replays from that instant, so nothing between the call and the
// stream being set up is lost). Both channels are closed when ctx ends or the
// stream fails; a failure is sent on the error channel first.
func (d *Driver) Events(ctx context.Context) (<-chan driver.Event, <-chan error) {
	now := time.Now()
	msgs, errs := d.cli.Events(ctx, events.ListOptions{
		Since: fmt.Sprintf("%d.%09d", now.Unix(), now.Nanosecond()),
		Filters: filters.NewArgs(
			filters.Arg("type", string(events.ContainerEventType)),
			filters.Arg("label", driver.LabelManaged+"=true"),
			filters.Arg("event", string(events.ActionStart)),
			filters.Arg("event", string(events.ActionDie)),
			filters.Arg("event", string(events.ActionOOM)),
		),
	})
	out := make(chan driver.Event)
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-errs:
				if err != nil && ctx.Err() == nil {
					if errors.Is(err, io.EOF) {
						err = errors.New("engine closed the event stream")
					}
					errc <- fmt.Errorf("docker: events: %w", err)
				}
				return
			case m := <-msgs:
				ev, ok := toEvent(m)
				if !ok {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, errc
}

func toEvent(m events.Message) (driver.Event, bool) {
	ev := driver.Event{ContainerID: m.Actor.ID, Labels: map[string]string{}}
	switch m.Action {
	case events.ActionStart:
		ev.Kind = driver.EventStart
	case events.ActionDie:
		ev.Kind = driver.EventDie
		if c, err := strconv.Atoi(m.Actor.Attributes["exitCode"]); err == nil {
			ev.ExitCode = c
		}
	case events.ActionOOM:
		ev.Kind = driver.EventOOM
		ev.OOMKilled = true
	default:
		return driver.Event{}, false
	}
	for k, v := range m.Actor.Attributes {
		if !engineAttributes[k] {
			ev.Labels[k] = v
		}
	}
	if m.TimeNano != 0 {
		ev.At = time.Unix(0, m.TimeNano)
	} else {
		ev.At = time.Unix(m.Time, 0)
	}
	return ev, true
}

// Logs streams the container's stdout and stderr as one plain text stream,
// demultiplexed from the engine's framing. Closing the reader ends the
// stream (and the request to the engine).
func (d *Driver) Logs(ctx context.Context, id string, since time.Time, follow bool) (io.ReadCloser, error) {
	c, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		return nil, notFound(ctxErr(ctx, err), "logs of container", id)
	}
	opts := container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: follow, Timestamps: false}
	if !since.IsZero() {
		opts.Since = fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond())
	}
	rc, err := d.cli.ContainerLogs(ctx, c.ID, opts)
	if err != nil {
		return nil, notFound(ctxErr(ctx, err), "logs of container", id)
	}
	if c.Config != nil && c.Config.Tty { // not framed (the driver never creates such containers)
		return rc, nil
	}
	return &frameReader{body: rc}, nil
}
