// Package ring provides a bounded, mutex-guarded ring buffer used for the
// watcher's execution logs. Old entries are overwritten once the buffer is
// full, so memory stays bounded however long a program runs.
package ring

import "sync"

// Buffer keeps the most recent Cap() entries.
type Buffer[T any] struct {
	mu    sync.Mutex
	buf   []T
	next  int // index the next Push writes to
	count int // valid entries, <= len(buf)
}

// New returns a buffer holding at most capacity entries (at least one).
func New[T any](capacity int) *Buffer[T] {
	if capacity < 1 {
		capacity = 1
	}
	return &Buffer[T]{buf: make([]T, capacity)}
}

// Cap reports the maximum number of entries kept.
func (b *Buffer[T]) Cap() int { return len(b.buf) }

// Push appends v, overwriting the oldest entry when full.
func (b *Buffer[T]) Push(v T) {
	b.mu.Lock()
	b.buf[b.next] = v
	b.next++
	if b.next == len(b.buf) {
		b.next = 0
	}
	if b.count < len(b.buf) {
		b.count++
	}
	b.mu.Unlock()
}

// Len reports how many entries are held.
func (b *Buffer[T]) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count
}

// Last returns up to n of the newest entries, oldest first. n <= 0 means all.
func (b *Buffer[T]) Last(n int) []T {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n <= 0 || n > b.count {
		n = b.count
	}
	out := make([]T, n)
	start := b.next - n
	if start < 0 {
		start += len(b.buf)
	}
	for i := 0; i < n; i++ {
		out[i] = b.buf[(start+i)%len(b.buf)]
	}
	return out
}
