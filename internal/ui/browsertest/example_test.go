package browsertest_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hershyorg/hershy/internal/ui/browsertest"
)

// A browser test of a page: serve it on loopback, drive the real browser,
// keep a screenshot. (The example needs a test's *testing.T, so it is
// compiled but not run here; the package's own tests run the same steps.)
func Example() {
	testSignIn := func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`<form><input id="token"><button>Sign in</button></form>`))
		}))
		defer srv.Close()

		b := browsertest.New(t, browsertest.Options{})
		b.Navigate(srv.URL)
		b.Fill("#token", "hy_example")
		b.Click("button")
		b.WaitVisible("#token")
		b.Screenshot("sign-in") // $HERSHY_ARTIFACTS/<test name>/sign-in.png
	}
	_ = testSignIn
}
