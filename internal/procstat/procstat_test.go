package procstat

import (
	"os"
	"strconv"
	"testing"
)

// TestParse: a command name holding spaces and parentheses does not shift
// the fields after it.
func TestParse(t *testing.T) {
	f, err := parse(7, []byte("7 (a) b (c)) S 1 7 7 0 -1 4194560 100 0 0 0 12 34 0 0 20 0 1 0 5678 1000\n"))
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int]string{3: "S", 4: "1", 14: "12", 15: "34", 22: "5678"} {
		if got, ok := Field(f, n); !ok || got != want {
			t.Errorf("field %d = %q %v, want %q", n, got, ok, want)
		}
	}
	if _, ok := Field(f, 99); ok {
		t.Error("a field past the end")
	}
	if _, err := parse(7, []byte("7 no parenthesis")); err == nil {
		t.Error("no ')' accepted")
	}
	self, err := Fields(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if ppid, _ := Field(self, 4); ppid != strconv.Itoa(os.Getppid()) {
		t.Errorf("own parent %q, want %d", ppid, os.Getppid())
	}
}
