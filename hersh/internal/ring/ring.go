// Package ring provides a bounded, mutex-guarded ring buffer used for the
// watcher's execution logs. Old entries are overwritten once the buffer is
// full, so memory stays bounded however long a program runs.
//
// Memory grows with use, up to the capacity: a buffer of 50,000 entries that
// has seen three holds a few words, not 50,000 zeroed entries. That matters
// twice over for a watcher: an idle program pays only for what it logged,
// and the garbage collector scans only entries that exist (log entries hold
// pointers, so every preallocated one was scanned by every GC cycle).
package ring

import "sync"

// Entries are kept in blocks of blockLen, allocated as the buffer fills.
// Only the first block grows by doubling (from firstLen), so a buffer that
// sees a handful of entries stays small, and a full one never copies more
// than one block on the way.
const (
	blockLen = 256
	firstLen = 8
)

// Buffer keeps the most recent Cap() entries.
type Buffer[T any] struct {
	mu       sync.Mutex
	capacity int
	blocks   [][]T // entry i lives in blocks[i/blockLen][i%blockLen]
	next     int   // index the next Push writes to, in [0, capacity)
	count    int   // valid entries, <= capacity
}

// New returns a buffer holding at most capacity entries (at least one).
// It allocates no entries until they are pushed.
func New[T any](capacity int) *Buffer[T] {
	if capacity < 1 {
		capacity = 1
	}
	return &Buffer[T]{capacity: capacity}
}

// Cap reports the maximum number of entries kept.
func (b *Buffer[T]) Cap() int { return b.capacity }

// Push appends v, overwriting the oldest entry when full.
func (b *Buffer[T]) Push(v T) {
	b.mu.Lock()
	i := b.next
	blk, off := i/blockLen, i%blockLen
	if blk == len(b.blocks) {
		// A new block: entries i.. are written for the first time. Block
		// blk holds at most blockLen entries, fewer if it is the last.
		n := min(blockLen, b.capacity-blk*blockLen)
		if blk == 0 {
			n = min(n, firstLen)
		}
		b.blocks = append(b.blocks, make([]T, n))
	} else if off == len(b.blocks[blk]) {
		// Only the first block can be short of its full length: double it.
		grown := make([]T, min(2*off, blockLen, b.capacity))
		copy(grown, b.blocks[blk])
		b.blocks[blk] = grown
	}
	b.blocks[blk][off] = v
	b.next++
	if b.next == b.capacity {
		b.next = 0
	}
	if b.count < b.capacity {
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
	i := b.next - n
	if i < 0 {
		i += b.capacity
	}
	for j := range out {
		out[j] = b.blocks[i/blockLen][i%blockLen]
		if i++; i == b.capacity {
			i = 0
		}
	}
	return out
}

// allocated reports how many entries the buffer has memory for (tests).
func (b *Buffer[T]) allocated() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, blk := range b.blocks {
		n += len(blk)
	}
	return n
}
