// Package procstat reads /proc/<pid>/stat, whose second field, the command
// name, is in parentheses and may itself hold spaces and parentheses: the
// fields after it are found from the last ')'. The Docker driver (a
// process's start time), the bench (CPU times) and the browser kit (parent
// and group) read it.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// Fields returns the fields of /proc/<pid>/stat from the third on: index 0
// is field 3 (state), index n is field n+3 (proc(5) numbers them from 1).
func Fields(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	return parse(pid, b)
}

func parse(pid int, b []byte) ([]string, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	raw := bytes.Fields(b[i+1:])
	f := make([]string, len(raw))
	for j, r := range raw {
		f[j] = string(r)
	}
	return f, nil
}

// Field returns field n of proc(5)'s numbering (n >= 3) from Fields' answer.
func Field(f []string, n int) (string, bool) {
	if n < 3 || n-3 >= len(f) {
		return "", false
	}
	return f[n-3], true
}
