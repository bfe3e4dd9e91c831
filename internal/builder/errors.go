package builder

import (
	"errors"
	"fmt"

	"github.com/hershyorg/hershy/internal/gomod"
)

// Errors a build can fail with (wrapped; test with errors.Is).
var (
	// ErrNoBuildFile: the source has neither a Dockerfile nor a go.mod at its root.
	ErrNoBuildFile = errors.New("the source has neither a Dockerfile nor a go.mod at its root")
	// ErrNoGo: Go-source builds need a Go toolchain on the Host and none was found.
	ErrNoGo = errors.New("no Go toolchain on the Host")
	// ErrToolchain: the program needs a newer Go than the Host's toolchain
	// (toolchain downloads are disabled: GOTOOLCHAIN=local).
	ErrToolchain = gomod.ErrToolchain
	// ErrGoMod: the program's go.mod or go.sum is unusable (unreadable, a
	// replace directive pointing outside the program's source, a
	// requirement without a go.sum entry).
	ErrGoMod = gomod.ErrInvalid
	// ErrSourceMismatch: the stored source does not hash to the requested build id.
	ErrSourceMismatch = errors.New("the stored source does not match its build id")
	// ErrContextTooLarge: a Dockerfile build's context exceeds Options.MaxContext.
	ErrContextTooLarge = errors.New("build context too large")
)

// Error is a failed build step with the output it produced.
type Error struct {
	// Step is what failed: "go build" (in the build sandbox), "image
	// import" (a Go-source image) or "image build" (a Dockerfile's).
	Step string
	// Output is the step's output (the first and the last parts when it
	// was long, with a note of what was left out).
	Output string
	// Err is the cause: an exit status, a driver error, or a wrapped
	// context.DeadlineExceeded (timeout) or context.Canceled.
	Err error
}

// Error reports the step, the cause and the first lines of the output (for
// a compile error, the compiler's messages).
func (e *Error) Error() string {
	msg := fmt.Sprintf("build: %s failed: %v", e.Step, e.Err)
	if lines := firstLines(e.Output, 20, 4<<10); lines != "" {
		msg += "\n" + lines
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }
