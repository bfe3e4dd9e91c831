package browsertest

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/hershyorg/hershy/internal/procstat"
)

// procStat is what /proc/<pid>/stat tells of a process.
type procStat struct {
	pid, ppid, pgid int
	state           byte
}

// readStat reads /proc/<pid>/stat (package procstat).
func readStat(pid int) (procStat, bool) {
	f, err := procstat.Fields(pid) // state ppid pgrp ...
	if err != nil || len(f) < 3 || len(f[0]) != 1 {
		return procStat{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgid, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return procStat{}, false
	}
	return procStat{pid: pid, ppid: ppid, pgid: pgid, state: f[0][0]}, true
}

// allProcs lists the processes of the machine (of this PID namespace).
func allProcs() []procStat {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procStat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok {
			out = append(out, st)
		}
	}
	return out
}

// processes lists the live processes of the browser: those in its process
// group, those whose command line names its profile directory (Chromium
// passes --user-data-dir to every child; the crashpad handlers, detached
// from the group, get their database there), and every descendant of these
// (a child could leave the group). Zombies are not counted: they hold nothing
// but a process table entry, and the machine's init reaps them once their
// parent, Chromium, is gone.
func (b *Browser) processes() []int {
	if b.pid <= 0 {
		return nil
	}
	procs := allProcs()
	profile := []byte(b.dataDir + string(os.PathSeparator))
	children := map[int][]int{}
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	set := map[int]bool{}
	var walk func(pid int)
	walk = func(pid int) {
		if set[pid] {
			return
		}
		set[pid] = true
		for _, c := range children[pid] {
			walk(c)
		}
	}
	for _, p := range procs {
		if p.pgid == b.pid || p.pid == b.pid || usesProfile(p.pid, b.dataDir, profile) {
			walk(p.pid)
		}
	}
	var out []int
	for _, p := range procs {
		if set[p.pid] && p.state != 'Z' {
			out = append(out, p.pid)
		}
	}
	slices.Sort(out)
	return out
}

// usesProfile tells whether an argument of pid's command line names the
// profile directory dir or a path in it (--user-data-dir=dir, the crashpad
// handler's --database=dir/crashpad). prefix is dir followed by a slash.
func usesProfile(pid int, dir string, prefix []byte) bool {
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	for a := range bytes.SplitSeq(cmdline, []byte{0}) {
		_, value, ok := bytes.Cut(a, []byte("="))
		if ok && (string(value) == dir || bytes.HasPrefix(value, prefix)) {
			return true
		}
	}
	return false
}

// Processes returns the ids of the browser's live processes (the browser,
// its renderers and helpers). It is empty once the browser is closed.
func (b *Browser) Processes() []int {
	return b.processes()
}

// waitGone waits up to limit for the processes in pids, and any left of
// the browser, to end (or be zombies), and returns those that did not.
func (b *Browser) waitGone(pids []int, limit time.Duration) []int {
	deadline := time.Now().Add(limit)
	for {
		var alive []int
		for _, pid := range pids {
			if st, ok := readStat(pid); ok && st.state != 'Z' {
				alive = append(alive, pid)
			}
		}
		for _, pid := range b.processes() {
			if !slices.Contains(alive, pid) {
				alive = append(alive, pid)
			}
		}
		if len(alive) == 0 || time.Now().After(deadline) {
			return alive
		}
		time.Sleep(50 * time.Millisecond)
	}
}
