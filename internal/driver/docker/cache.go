package docker

import (
	"strings"
	"sync"
)

// byContainer keeps what the driver learned of each container (its init
// process for dials, its files for Stats) under the id the caller gave and
// under the full id, so a later call with either finds it. A container
// that stops or goes is forgotten under every id it was kept by.
type byContainer[T any] struct {
	mu sync.Mutex
	m  map[string]T
}

func (c *byContainer[T]) get(id string) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[id]
	return v, ok
}

// put keeps v under id and, when it differs, fullID.
func (c *byContainer[T]) put(id, fullID string, v T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]T{}
	}
	c.m[id] = v
	if fullID != id {
		c.m[fullID] = v
	}
}

// forget drops what is kept under id, under every id it is a prefix of
// (the full id of a short one) and under every prefix of it (a short id of
// the full one).
func (c *byContainer[T]) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if strings.HasPrefix(k, id) || strings.HasPrefix(id, k) {
			delete(c.m, k)
		}
	}
}
