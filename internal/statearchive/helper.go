package statearchive

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"time"
)

// The state helper is what runs inside a cluster's sandbox to read or
// write a program's volume: `hershy state-helper COMMAND ...` (a hidden
// command of the Host's own binary, so nothing of the user's image runs
// with the Host's archive). Its Pod mounts the volume at a folder and runs
// "wait"; the driver then runs the other commands in it, one at a time,
// the archive on their standard input or output:
//
//	wait SECONDS        do nothing for SECONDS (the Pod's main process)
//	export DIR          write DIR's archive to stdout
//	import DIR TOKEN LIMIT
//	                    extract the archive on stdin into DIR/TempPrefix+TOKEN,
//	                    checked as Extract does with LIMIT as the cap; print
//	                    the Result as JSON; DIR itself is unchanged
//	commit DIR TOKEN    swap DIR's entries for the import's (Swap)
//	discard DIR TOKEN   remove the import's folder
//
// Exit status 0 is success, HelperRefused an archive refused (the reason
// on stderr), anything else a failure of the helper.

// HelperCommand is the name of the hidden command that runs RunHelper.
const HelperCommand = "state-helper"

// HelperRefused is the helper's exit status for an archive refused.
const HelperRefused = 2

// RunHelper runs one state helper command and returns its exit status.
func RunHelper(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, format+"\n", a...)
		return code
	}
	if len(args) == 0 {
		return fail(1, "state-helper: a command is required (wait, export, import, commit, discard)")
	}
	cmd, args := args[0], args[1:]
	if cmd == "wait" {
		if len(args) != 1 {
			return fail(1, "state-helper wait SECONDS")
		}
		sec, err := strconv.Atoi(args[0])
		if err != nil || sec <= 0 {
			return fail(1, "state-helper wait: %q is not a number of seconds", args[0])
		}
		time.Sleep(time.Duration(sec) * time.Second)
		return 0
	}
	if len(args) == 0 || !path.IsAbs(args[0]) || path.Clean(args[0]) != args[0] || args[0] == "/" {
		return fail(1, "state-helper %s: an absolute clean folder below / is required", cmd)
	}
	dir := args[0]
	tmp := func() (string, bool) {
		if len(args) < 2 || !ValidToken(args[1]) {
			return "", false
		}
		return filepath.Join(dir, TempPrefix+args[1]), true
	}
	switch cmd {
	case "export":
		skipped, err := Write(stdout, dir)
		if err != nil {
			return fail(1, "state-helper export: %v", err)
		}
		if skipped > 0 {
			fmt.Fprintf(stderr, "left out %d special files (links, devices)\n", skipped)
		}
		return 0
	case "import":
		t, ok := tmp()
		if !ok || len(args) != 3 {
			return fail(1, "state-helper import DIR TOKEN LIMIT")
		}
		limit, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil || limit < 0 {
			return fail(1, "state-helper import: %q is not a number of bytes", args[2])
		}
		if err := os.Mkdir(t, 0o700); err != nil {
			return fail(1, "state-helper import: %v", err)
		}
		res, err := Extract(stdin, t, limit, os.Getuid(), os.Getgid())
		if err != nil {
			os.RemoveAll(t)
			if errors.Is(err, ErrRefused) {
				return fail(HelperRefused, "%v", err)
			}
			return fail(1, "state-helper import: %v", err)
		}
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			os.RemoveAll(t)
			return fail(1, "state-helper import: %v", err)
		}
		return 0
	case "commit", "discard":
		t, ok := tmp()
		if !ok || len(args) != 2 {
			return fail(1, "state-helper %s DIR TOKEN", cmd)
		}
		if cmd == "commit" {
			if _, err := os.Lstat(t); err != nil {
				return fail(1, "state-helper commit: %v", err)
			}
			if err := Swap(dir, t); err != nil {
				return fail(1, "state-helper commit: %v", err)
			}
		}
		if err := os.RemoveAll(t); err != nil {
			return fail(1, "state-helper %s: %v", cmd, err)
		}
		return 0
	}
	return fail(1, "state-helper: unknown command %q", cmd)
}
