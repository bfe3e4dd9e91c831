package browsertest

import (
	"context"
	"encoding/json"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
)

// AXNode is a node of the page's accessibility tree: what a screen reader
// is told about an element.
type AXNode struct {
	Role        string // "image", "button", "link", "heading", ...
	Name        string // the accessible name (a label, alt text, an SVG <title>)
	Description string // the accessible description (an SVG <desc>, aria-describedby)
}

// Accessibility returns the page's accessibility tree as Chromium computes
// it, in document order, without the nodes it ignores. A test can check
// that a control has a name, or that a chart reads as an image with its
// title.
func (b *Browser) Accessibility() []AXNode {
	b.t.Helper()
	tree, err := run(b, func(ctx context.Context, t *chromedp.Target) (accessibility.GetFullAXTreeResult, error) {
		return cdp.Call(ctx, t, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	})
	if err != nil {
		b.fatalf("reading the accessibility tree: %v", err)
	}
	var out []AXNode
	for _, n := range tree.Nodes {
		if n == nil || n.Ignored {
			continue
		}
		out = append(out, AXNode{Role: axString(n.Role), Name: axString(n.Name), Description: axString(n.Description)})
	}
	return out
}

// axString is the text of an accessibility value ("" when it has none or
// it is not a string).
func axString(v *accessibility.Value) string {
	if v == nil || len(v.Value) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(v.Value, &s) != nil {
		return ""
	}
	return s
}
