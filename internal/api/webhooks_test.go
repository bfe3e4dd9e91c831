package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/alerts"
	"github.com/hershyorg/hershy/internal/host"
)

// TestWebhooks: a user registers a webhook and sees its secret once; the
// delivery of a ping reaches a receiver the operator allowed, signed, and
// is logged; another user cannot see, ping or delete it (404, as for a
// missing one); the admin sees every one; bad requests are 400s.
func TestWebhooks(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	var bodies [][]byte
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, b)
		mu.Unlock()
	}))
	defer recv.Close()
	e := newEnv(t, func(o *host.Options) { o.Alerts.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} })

	var hook struct {
		ID, URL, Secret string
		Events          []string
		CrashLoop       struct{ Crashes int } `json:"crash_loop"`
	}
	e.do("POST", "/webhooks", e.tokA, `{"url":"`+recv.URL+`/h","events":["crashed","crash_loop"],"crash_loop":{"crashes":4,"window_seconds":900}}`, 201, &hook)
	if !strings.HasPrefix(hook.Secret, "whsec_") || hook.URL != recv.URL+"/h" || len(hook.Events) != 2 || hook.CrashLoop.Crashes != 4 {
		t.Fatalf("created %+v", hook)
	}
	var list struct {
		Webhooks []map[string]any `json:"webhooks"`
	}
	e.do("GET", "/webhooks", e.tokA, "", 200, &list)
	if len(list.Webhooks) != 1 || list.Webhooks[0]["secret"] != nil {
		t.Fatalf("alice's list %v (the secret must not show again)", list.Webhooks)
	}
	e.do("GET", "/webhooks", e.tokB, "", 200, &list)
	if len(list.Webhooks) != 0 {
		t.Fatalf("bob sees %v", list.Webhooks)
	}
	e.do("GET", "/webhooks", e.admin, "", 200, &list)
	if len(list.Webhooks) != 1 {
		t.Fatalf("the admin sees %v", list.Webhooks)
	}
	for _, rq := range [][2]string{{"GET", ""}, {"DELETE", ""}, {"POST", "/ping"}, {"GET", "/deliveries"}} {
		resp, b := e.req(rq[0], "/webhooks/"+hook.ID+rq[1], e.tokB, "")
		checkError(t, "bob's "+rq[0]+" "+rq[1], resp, b, 404)
	}

	var ping struct {
		EventID string `json:"event_id"`
	}
	e.do("POST", "/webhooks/"+hook.ID+"/ping", e.tokA, "", 202, &ping)
	var ds struct {
		Deliveries []struct {
			EventID       string `json:"event_id"`
			Type, Outcome string
			Status        int
		} `json:"deliveries"`
	}
	for deadline := time.Now().Add(30 * time.Second); len(ds.Deliveries) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no delivery logged")
		}
		e.do("GET", "/webhooks/"+hook.ID+"/deliveries", e.tokA, "", 200, &ds)
	}
	if d := ds.Deliveries[0]; d.EventID != ping.EventID || d.Type != "ping" || d.Outcome != "delivered" || d.Status != 200 {
		t.Fatalf("delivery %+v", d)
	}
	mu.Lock()
	req, body := got[0], bodies[0]
	mu.Unlock()
	if err := alerts.Verify(hook.Secret, req.Header.Get(alerts.SignatureHeader), body, time.Now()); err != nil {
		t.Fatalf("the receiver cannot verify the ping: %v", err)
	}
	var ev map[string]any
	if json.Unmarshal(body, &ev); ev["type"] != "ping" || ev["id"] != ping.EventID {
		t.Fatalf("ping body %s", body)
	}

	for _, bad := range []string{
		`{}`,
		`{"url":"http://169.254.169.254/latest/"}`,
		`{"url":"http://10.0.0.1/"}`,
		`{"url":"ftp://example.com/"}`,
		`{"url":"https://example.com/","events":["all"]}`,
		`{"url":"https://example.com/","crash_loop":{"crashes":1,"window_seconds":60}}`,
		`{"url":"https://example.com/","crash_loop":{"crashes":3,"window_seconds":1e300}}`,
		`{"url":"https://example.com/","extra":1}`,
		`{"url":"` + strings.Repeat("a", 70<<10) + `"}`,
	} {
		resp, b := e.req("POST", "/webhooks", e.tokA, bad)
		if resp.StatusCode != 400 && resp.StatusCode != 413 {
			t.Errorf("POST /webhooks %.80s: %d %s", bad, resp.StatusCode, b)
		}
	}
	resp, b := e.req("POST", "/webhooks", e.tokA, `{"url":"https://example.com/","program_id":"nope"}`)
	checkError(t, "a missing program", resp, b, 404)
	resp, b = e.req("GET", "/webhooks/"+hook.ID+"/deliveries?limit=0", e.tokA, "")
	checkError(t, "limit 0", resp, b, 400)

	e.do("DELETE", "/webhooks/"+hook.ID, e.tokA, "", 204, nil)
	resp, b = e.req("GET", "/webhooks/"+hook.ID, e.tokA, "")
	checkError(t, "a deleted webhook", resp, b, 404)
}

// TestAlertEventDocumented: the description's AlertEvent, what a webhook's
// receiver is told to expect, has exactly the fields a delivery carries,
// and every kind.
func TestAlertEventDocumented(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum []string `json:"enum"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openapiJSON, &doc); err != nil {
		t.Fatal(err)
	}
	props := doc.Components.Schemas["AlertEvent"].Properties
	ty := reflect.TypeFor[alerts.Event]()
	sent := map[string]bool{}
	for i := range ty.NumField() {
		name, _, _ := strings.Cut(ty.Field(i).Tag.Get("json"), ",")
		sent[name] = true
		if _, ok := props[name]; !ok {
			t.Errorf("a delivery's field %s is not in AlertEvent", name)
		}
	}
	for name := range props {
		if !sent[name] {
			t.Errorf("AlertEvent documents %s, which no delivery has", name)
		}
	}
	kinds := props["type"].Enum
	for _, k := range append(alerts.Kinds, alerts.Ping) {
		if !slices.Contains(kinds, string(k)) {
			t.Errorf("AlertEvent's type lacks %s", k)
		}
	}
}
