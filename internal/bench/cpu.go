package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hershyorg/hershy/internal/procstat"
)

// The CPU the parties of a scale figure used, from /proc: where the time
// of "n programs started at once" goes, the Host's side against the
// by-hand side, as a first profile.

// clockTick is the kernel's USER_HZ, the unit of /proc's CPU times (100 on
// every Linux this runs on).
const clockTick = 100

// cpuUse is CPU time used so far by the Host (or the bench process, for
// the by-hand side), the engine (dockerd and containerd with their shims)
// and the whole machine.
type cpuUse struct {
	self, engine, machine time.Duration
}

// readCPU reads the CPU used so far by process pid, the engine's
// processes and the machine.
func readCPU(pid int) (cpuUse, error) {
	self, err := procCPU(pid)
	if err != nil {
		return cpuUse{}, err
	}
	var engine time.Duration
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(d + "/comm")
		if err != nil {
			continue
		}
		switch strings.TrimSpace(string(comm)) {
		case "dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2":
			if p, err := strconv.Atoi(filepath.Base(d)); err == nil {
				if c, err := procCPU(p); err == nil {
					engine += c
				}
			}
		}
	}
	machine, err := machineCPU()
	if err != nil {
		return cpuUse{}, err
	}
	return cpuUse{self: self, engine: engine, machine: machine}, nil
}

func (a cpuUse) sub(b cpuUse) cpuUse {
	return cpuUse{self: a.self - b.self, engine: a.engine - b.engine, machine: a.machine - b.machine}
}

// describe says it as "Host 3.1 s, engine 40.2 s, whole machine 190.0 s
// of CPU"; who names the first party.
func (a cpuUse) describe(who string) string {
	return fmt.Sprintf("%s %.1f s, engine %.1f s, whole machine %.1f s of CPU", who, a.self.Seconds(), a.engine.Seconds(), a.machine.Seconds())
}

// procCPU is a process's user and system time (its own threads, not its
// children's).
func procCPU(pid int) (time.Duration, error) {
	f, err := procstat.Fields(pid)
	if err != nil {
		return 0, err
	}
	u, _ := procstat.Field(f, 14)
	s, _ := procstat.Field(f, 15)
	utime, err1 := strconv.ParseInt(u, 10, 64)
	stime, err2 := strconv.ParseInt(s, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: times %q %q", pid, u, s)
	}
	return time.Duration(utime+stime) * time.Second / clockTick, nil
}

// machineCPU is the time every CPU of the machine spent busy (all but idle
// and iowait), from /proc/stat's first line.
func machineCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: %q", line)
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %q", line)
		}
		if i != 3 && i != 4 && i < 8 { // idle, iowait; guest times are in user already
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / clockTick, nil
}
