package hersh

import "errors"

// ExitCode maps how a watcher ended to a process exit code, so a supervisor
// (the Hershy Host's restart policy, systemd) can tell a normal end from a
// failure: 0 after a stop, 1 after a crash, 2 after a kill, 3 for any other
// error (a failed start, say).
func ExitCode(err error) int {
	var (
		crash *CrashError
		kill  *KillError
	)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &crash):
		return 1
	case errors.As(err, &kill):
		return 2
	default:
		return 3
	}
}
