package api

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hershyorg/hershy/internal/host/hosttest"
)

// state_bytes is checked at the edge against the Host's maximum, shown in
// the program view with what the program stores, changed by a source
// update, and exported as metrics.
func TestStateBytes(t *testing.T) {
	e := newEnv(t, hosttest.CappedState(t))
	src := `"src_files":{"go.mod":"module example.com/s\n\ngo 1.25\n","main.go":"package main\n\nfunc main() {}\n"}`
	for _, n := range []int64{5 << 30, 1 << 20, -1} {
		resp, b := e.req("POST", "/programs", e.tokA, fmt.Sprintf(`{%s,"state_bytes":%d}`, src, n))
		checkError(t, fmt.Sprint("state_bytes ", n), resp, b, 400)
		if !strings.Contains(string(b), "state_bytes") {
			t.Errorf("state_bytes %d: the error does not name the field: %s", n, b)
		}
	}

	var created struct {
		ProgramID string `json:"program_id"`
	}
	e.do("POST", "/programs", e.tokA, fmt.Sprintf(`{%s,"state_bytes":%d}`, src, 8<<20), 201, &created)
	id := created.ProgramID
	var v programView
	e.do("GET", "/programs/"+id, e.tokA, "", 200, &v)
	if v.StateBytesLimit == nil || *v.StateBytesLimit != 8<<20 || v.StateBytesUsed == nil || *v.StateBytesUsed > 1<<20 || v.Options.StateBytes != 8<<20 {
		t.Fatalf("view of a new program: used %v limit %v options %+v", v.StateBytesUsed, v.StateBytesLimit, v.Options)
	}
	// Without state_bytes: the Host's default (256 MiB).
	var other struct {
		ProgramID string `json:"program_id"`
	}
	e.do("POST", "/programs", e.tokA, `{"src_files":{"go.mod":"module example.com/t\n\ngo 1.25\n","main.go":"package main\n\nfunc main() {}\n"}}`, 201, &other)
	e.do("GET", "/programs/"+other.ProgramID, e.tokA, "", 200, &v)
	if v.StateBytesLimit == nil || *v.StateBytesLimit != 256<<20 {
		t.Fatalf("default cap: %v", v.StateBytesLimit)
	}

	// An update raises it (the program is not running).
	e.do("PUT", "/programs/"+id+"/source", e.tokA, fmt.Sprintf(`{%s,"state_bytes":%d}`, src, 16<<20), 200, &v)
	if v.StateBytesLimit == nil || *v.StateBytesLimit != 16<<20 || v.Options.StateBytes != 16<<20 {
		t.Fatalf("view after raising: limit %v options %+v", v.StateBytesLimit, v.Options)
	}
	resp, b := e.req("PUT", "/programs/"+id+"/source", e.tokA, fmt.Sprintf(`{%s,"state_bytes":%d}`, src, 8<<30))
	checkError(t, "an update over the maximum", resp, b, 400)

	resp, b = e.req("GET", "/metrics", e.admin, "")
	if resp.StatusCode != 200 {
		t.Fatalf("metrics: %d %s", resp.StatusCode, b)
	}
	for _, want := range []string{
		fmt.Sprintf(`hershy_program_state_limit_bytes{program=%q} 1.6777216e+07`, id),
		fmt.Sprintf(`hershy_program_state_bytes{program=%q} `, id),
		fmt.Sprintf(`hershy_program_state_limit_bytes{program=%q} 2.68435456e+08`, other.ProgramID),
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
