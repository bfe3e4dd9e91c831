package dockerfile

// Helpers only the tests need.

// Images returns the references of Bases, each once, in order.
func (r Result) Images() []string {
	var out []string
	seen := map[string]bool{}
	for _, b := range r.Bases {
		if !seen[b.Ref] {
			seen[b.Ref] = true
			out = append(out, b.Ref)
		}
	}
	return out
}
