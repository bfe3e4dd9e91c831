package browsertest

import (
	"context"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// Cookies returns the cookies the browser holds for the current page,
// HttpOnly ones included (the page's script cannot see those), with their
// flags: a test can check that a session cookie is HttpOnly, SameSite
// Strict and, over TLS, Secure.
func (b *Browser) Cookies() []*network.Cookie {
	b.t.Helper()
	res, err := run(b, func(ctx context.Context, t *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{})
	})
	if err != nil {
		b.fatalf("reading the cookies: %v", err)
	}
	return res.Cookies
}
