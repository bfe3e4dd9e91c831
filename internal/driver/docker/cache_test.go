package docker

import "testing"

// TestByContainer: a value kept under a short id is found by it and by the
// full id, and forgetting either id (or a shorter prefix) drops both; other
// containers' values stay.
func TestByContainer(t *testing.T) {
	const full, other = "3f2a9c0d1e7b", "77aa00bb11cc"
	for _, forget := range []string{"3f2a", full, "3f"} {
		var c byContainer[int]
		c.put("3f2a", full, 1)
		c.put(other, other, 2)
		for _, id := range []string{"3f2a", full} {
			if v, ok := c.get(id); !ok || v != 1 {
				t.Fatalf("get(%q) = %d, %v", id, v, ok)
			}
		}
		c.forget(forget)
		for _, id := range []string{"3f2a", full} {
			if _, ok := c.get(id); ok {
				t.Errorf("forget(%q): still kept under %q", forget, id)
			}
		}
		if v, ok := c.get(other); !ok || v != 2 {
			t.Errorf("forget(%q) dropped another container's value", forget)
		}
	}
}
