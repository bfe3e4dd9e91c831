package kubernetes

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Logs streams the program's output from the API server (the kubelet
// keeps it: stdout and stderr in one stream, as written). The API server
// takes a since time in whole seconds, so the driver asks for timestamps,
// starts at the second, and drops the lines before since itself. A Pod
// is one run: a container started again has only its new run's output.
func (d *Driver) Logs(ctx context.Context, id string, since time.Time, follow bool) (io.ReadCloser, error) {
	p, err := d.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if gated(p) || programStatus(p) == nil || programStatus(p).State.Waiting != nil && !stateOf(p).exited {
		return io.NopCloser(bytes.NewReader(nil)), nil // it never ran
	}
	opts := &corev1.PodLogOptions{Container: container, Follow: follow, Timestamps: true}
	if !since.IsZero() {
		t := metav1.NewTime(since.Truncate(time.Second))
		opts.SinceTime = &t
	}
	rc, err := d.cs.CoreV1().Pods(d.ns).GetLogs(id, opts).Stream(ctx)
	if err != nil {
		return nil, notFound("logs of "+id, err)
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(untimestamp(rc, pw, since))
		rc.Close()
	}()
	return &logReader{pr: pr, rc: rc}, nil
}

// logReader closes the API server's stream too, so a follow ends.
type logReader struct {
	pr *io.PipeReader
	rc io.ReadCloser
}

func (l *logReader) Read(b []byte) (int, error) { return l.pr.Read(b) }
func (l *logReader) Close() error {
	l.rc.Close()
	return l.pr.Close()
}

// untimestamp copies lines "TIMESTAMP TEXT" from r to w as "TEXT", leaving
// out those stamped before since. A program's line may be of any length:
// it is copied in pieces of the reader's buffer, so the Host holds at most
// that much of it (the stamp is in the first piece, which decides for the
// rest).
func untimestamp(r io.Reader, w io.Writer, since time.Time) error {
	br := bufio.NewReaderSize(r, 64<<10)
	inLine, keep := false, true // within a long line; whether it is copied
	for {
		piece, err := br.ReadSlice('\n')
		text := piece
		if !inLine && len(piece) > 0 {
			stamp, rest, ok := bytes.Cut(piece, []byte(" "))
			at, perr := time.Parse(time.RFC3339Nano, string(stamp))
			switch {
			case !ok || perr != nil:
				keep = true // not stamped: the kubelet's own note
			case at.Before(since):
				keep = false
			default:
				keep, text = true, rest
			}
		}
		if keep && len(text) > 0 {
			if _, werr := w.Write(text); werr != nil {
				return werr
			}
		}
		inLine = errors.Is(err, bufio.ErrBufferFull)
		switch {
		case inLine:
		case err == io.EOF:
			return nil
		case err != nil:
			return fmt.Errorf("kubernetes: logs: %w", err)
		}
	}
}
