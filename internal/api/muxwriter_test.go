package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hershyorg/hershy/internal/driver/fake"
)

// TestRouterOwnAnswers: with the router run once (muxWriter), a route's
// handler still answers the client directly, and the router's own answers
// still become JSON errors: 404 for no route, 405 with Allow for another
// method, a redirect for an unclean path.
func TestRouterOwnAnswers(t *testing.T) {
	e := newFakeProxyEnv(t, fake.Script{API: statusHandler()}.Program(), Options{})
	resp, b := send(t, "GET", e.srv.URL+"/healthz", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"ok"`) || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("healthz: %s %q", resp.Status, b)
	}
	resp, b = send(t, "GET", e.srv.URL+"/nowhere", e.alice, nil)
	checkError(t, "no route", resp, b, http.StatusNotFound)
	resp, b = send(t, "DELETE", e.srv.URL+"/healthz", e.alice, nil)
	checkError(t, "another method", resp, b, http.StatusMethodNotAllowed)
	if allow := resp.Header.Get("Allow"); !strings.Contains(allow, "GET") {
		t.Errorf("405 without Allow: %q", allow)
	}
	resp, _ = send(t, "GET", e.srv.URL+"/programs/../healthz", "", nil)
	if resp.StatusCode != http.StatusTemporaryRedirect && resp.StatusCode != http.StatusMovedPermanently {
		t.Errorf("an unclean path: %s", resp.Status)
	} else if loc := resp.Header.Get("Location"); loc != "/healthz" {
		t.Errorf("an unclean path redirects to %q", loc)
	}
}
