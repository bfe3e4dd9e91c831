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
