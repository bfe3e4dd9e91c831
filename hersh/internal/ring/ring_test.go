package ring

import (
	"reflect"
	"testing"
)

func TestBuffer(t *testing.T) {
	tests := []struct {
		name   string
		cap    int
		push   []int
		last   int
		want   []int
		length int
	}{
		{"empty", 3, nil, 0, []int{}, 0},
		{"partial", 3, []int{1, 2}, 0, []int{1, 2}, 2},
		{"exactly full", 3, []int{1, 2, 3}, 0, []int{1, 2, 3}, 3},
		{"wraps and drops oldest", 3, []int{1, 2, 3, 4, 5}, 0, []int{3, 4, 5}, 3},
		{"last n of wrapped", 3, []int{1, 2, 3, 4, 5}, 2, []int{4, 5}, 3},
		{"last n larger than count", 5, []int{1, 2}, 10, []int{1, 2}, 2},
		{"capacity clamps to one", 0, []int{1, 2}, 0, []int{2}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New[int](tt.cap)
			for _, v := range tt.push {
				b.Push(v)
			}
			if got := b.Last(tt.last); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Last(%d) = %v, want %v", tt.last, got, tt.want)
			}
			if got := b.Len(); got != tt.length {
				t.Fatalf("Len() = %d, want %d", got, tt.length)
			}
		})
	}
}

// TestBufferAcrossBlocks checks the order of entries in buffers whose
// capacity spans several blocks (and ends in a short one), before and after
// they wrap.
func TestBufferAcrossBlocks(t *testing.T) {
	for _, capacity := range []int{1, 7, firstLen, firstLen + 1, blockLen, blockLen + 1, 3*blockLen - 5, 1000} {
		for _, pushes := range []int{0, 1, capacity - 1, capacity, capacity + 1, 2*capacity + 3, 5 * capacity} {
			b := New[int](capacity)
			for v := range pushes {
				b.Push(v)
			}
			held := min(pushes, capacity)
			want := make([]int, 0, held)
			for v := pushes - held; v < pushes; v++ {
				want = append(want, v)
			}
			if got := b.Last(0); !reflect.DeepEqual(got, want) {
				t.Fatalf("cap %d, %d pushes: Last(0) = %v, want %v", capacity, pushes, got, want)
			}
			if held > 2 {
				if got := b.Last(2); !reflect.DeepEqual(got, want[held-2:]) {
					t.Fatalf("cap %d, %d pushes: Last(2) = %v, want %v", capacity, pushes, got, want[held-2:])
				}
			}
			if got := b.allocated(); got > capacity || got < held {
				t.Fatalf("cap %d, %d pushes: memory for %d entries", capacity, pushes, got)
			}
		}
	}
}

// TestBufferGrowsOnDemand: a large buffer costs nothing until used, and its
// memory follows the entries it holds, up to its capacity.
func TestBufferGrowsOnDemand(t *testing.T) {
	b := New[[64]byte](50_000)
	if n := b.allocated(); n != 0 {
		t.Fatalf("new buffer has memory for %d entries", n)
	}
	if allocs := testing.AllocsPerRun(1, func() { New[[64]byte](50_000) }); allocs > 1 {
		t.Fatalf("New allocated %v times", allocs)
	}
	for range 3 {
		b.Push([64]byte{})
	}
	if n := b.allocated(); n > firstLen {
		t.Fatalf("3 entries take memory for %d", n)
	}
	for range 1000 {
		b.Push([64]byte{})
	}
	if n := b.allocated(); n > 1003+blockLen {
		t.Fatalf("1003 entries take memory for %d", n)
	}
	for range 100_000 {
		b.Push([64]byte{})
	}
	if n := b.allocated(); n != 50_000 {
		t.Fatalf("a full buffer of 50000 has memory for %d", n)
	}
}
