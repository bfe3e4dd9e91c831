package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
)

// execProtocol is the exec subresource's stream protocol: one SPDY stream
// each for stdin, stdout, stderr and the command's status, so the bytes
// of stdin and stdout go through as they are (unlike a Pod's log, which
// is text the kubelet reframes).
const execProtocol = "v4.channel.k8s.io"

// maxExecStderr caps what is kept of a command's standard error.
const maxExecStderr = 16 << 10

// execResult is how a command run in a Pod ended.
type execResult struct {
	code   int    // its exit status
	stderr string // the first maxExecStderr bytes of its standard error
}

// exec runs cmd in the Pod's container through the API server's exec
// subresource, with stdin (nil: none) on its standard input and its
// standard output copied to stdout. It returns once the command has
// ended and its output is copied. err is for the stream's failures (and
// ctx's, and stdin's read errors and stdout's write errors, which end the
// command's streams at once); the command's own failure is its exit
// status.
func (d *Driver) exec(ctx context.Context, pod, ctr string, cmd []string, stdin io.Reader, stdout io.Writer) (execResult, error) {
	req := d.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(d.ns).Name(pod).SubResource("exec").
		Param("container", ctr).Param("stdout", "true").Param("stderr", "true")
	if stdin != nil {
		req = req.Param("stdin", "true")
	}
	for _, a := range cmd {
		req = req.Param("command", a)
	}
	conn, err := d.upgrade(ctx, req.URL(), execProtocol)
	if err != nil {
		return execResult{}, fmt.Errorf("kubernetes: exec in %s: %w", pod, err)
	}
	defer conn.Close()
	stream := func(kind string) (httpstream.Stream, error) {
		h := http.Header{}
		h.Set(corev1.StreamType, kind)
		s, err := conn.CreateStream(h)
		if err != nil {
			return nil, fmt.Errorf("kubernetes: exec in %s: %s stream: %w", pod, kind, err)
		}
		return s, nil
	}
	// The status stream first, as the protocol asks; nothing is sent on it.
	errStream, err := stream(corev1.StreamTypeError)
	if err != nil {
		return execResult{}, err
	}
	errStream.Close()
	var inStream httpstream.Stream
	if stdin != nil {
		if inStream, err = stream(corev1.StreamTypeStdin); err != nil {
			return execResult{}, err
		}
	}
	outStream, err := stream(corev1.StreamTypeStdout)
	if err != nil {
		return execResult{}, err
	}
	errOut, err := stream(corev1.StreamTypeStderr)
	if err != nil {
		return execResult{}, err
	}

	// The first failure of ours (ctx, stdin, stdout) ends every stream.
	var (
		failOnce sync.Once
		failure  error
	)
	fail := func(err error) {
		failOnce.Do(func() { failure = err })
		conn.Close()
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
			fail(ctx.Err())
		case <-done:
		}
	})
	if inStream != nil {
		wg.Go(func() {
			in := &inputReader{r: stdin}
			if _, err := io.Copy(inStream, in); err != nil {
				// A write that fails is the command's end (its status
				// says how); a read that fails is ours.
				if in.err != nil {
					fail(fmt.Errorf("reading the input: %w", in.err))
				}
				return
			}
			inStream.Close() // the command's end of input
		})
	}
	var stderr bytes.Buffer
	var status []byte
	var statusErr error
	var readers sync.WaitGroup
	readers.Go(func() {
		if _, err := io.Copy(outputWriter{stdout}, outStream); err != nil {
			var we *writeError
			if errors.As(err, &we) {
				fail(we.err)
			}
		}
	})
	readers.Go(func() {
		io.Copy(&stderr, io.LimitReader(errOut, maxExecStderr))
		io.Copy(io.Discard, errOut)
	})
	readers.Go(func() {
		status, statusErr = io.ReadAll(io.LimitReader(errStream, 64<<10))
	})
	readers.Wait()
	close(done)
	conn.Close()
	wg.Wait()
	if failure != nil {
		return execResult{}, fmt.Errorf("kubernetes: exec in %s: %w", pod, failure)
	}
	if statusErr != nil {
		return execResult{}, fmt.Errorf("kubernetes: exec in %s: %w", pod, statusErr)
	}
	code, err := exitCode(status)
	if err != nil {
		return execResult{}, fmt.Errorf("kubernetes: exec in %s: %w", pod, err)
	}
	return execResult{code: code, stderr: stderr.String()}, nil
}

// exitCode reads the command's exit status from the status stream's
// message: a metav1.Status, Success or a Failure whose reason is
// NonZeroExitCode and whose cause of type ExitCode holds the number. Any
// other failure (the command could not start) is an error.
func exitCode(msg []byte) (int, error) {
	if len(bytes.TrimSpace(msg)) == 0 {
		return 0, errors.New("the stream ended without the command's status")
	}
	var s metav1.Status
	if err := json.Unmarshal(msg, &s); err != nil {
		return 0, fmt.Errorf("the command's status: %w", err)
	}
	if s.Status == metav1.StatusSuccess {
		return 0, nil
	}
	if s.Reason == "NonZeroExitCode" && s.Details != nil {
		for _, c := range s.Details.Causes {
			if c.Type == "ExitCode" {
				n, err := strconv.Atoi(c.Message)
				if err != nil {
					return 0, fmt.Errorf("the command's exit status %q: %w", c.Message, err)
				}
				return n, nil
			}
		}
	}
	return 0, fmt.Errorf("the command failed: %s", s.Message)
}

// writeError marks a failure of the writer a command's output goes to, so
// exec can tell it from the stream's end.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

// outputWriter wraps w's errors in writeError.
type outputWriter struct{ w io.Writer }

func (o outputWriter) Write(b []byte) (int, error) {
	n, err := o.w.Write(b)
	if err != nil {
		return n, &writeError{err}
	}
	return n, nil
}

// inputReader keeps the error of a command's input, so exec can tell it
// from the stream's.
type inputReader struct {
	r   io.Reader
	err error
}

func (i *inputReader) Read(b []byte) (int, error) {
	n, err := i.r.Read(b)
	if err != nil && !errors.Is(err, io.EOF) {
		i.err = err
	}
	return n, err
}
