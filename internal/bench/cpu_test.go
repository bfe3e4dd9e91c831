package bench

import (
	"os"
	"testing"
	"time"
)

// TestReadCPU: burning CPU shows in the process's time, and the machine's
// busy time grows by at least as much.
func TestReadCPU(t *testing.T) {
	before, err := readCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for deadline := time.Now().Add(time.Minute); ; x++ {
		if x%1_000_000 == 0 {
			self, err := procCPU(os.Getpid())
			if err != nil {
				t.Fatal(err)
			}
			if self-before.self >= 200*time.Millisecond {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a minute of spinning, and the process's CPU time grew by %v", self-before.self)
			}
		}
	}
	after, err := readCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	used := after.sub(before)
	if used.self < 200*time.Millisecond || used.machine < used.self-50*time.Millisecond || used.engine < 0 {
		t.Fatalf("after spinning: %+v", used)
	}
}
