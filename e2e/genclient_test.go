package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/api/genclient"
)

// TestGeneratedClient drives a real Host through the main workflow with
// the client oapi-codegen generates from the API's description
// (internal/api/genclient), and nothing else: a user creates a program
// from Go source, starts it, waits until it is Ready, reads its WatcherAPI
// status and sends it a message through the proxy, reads its logs and
// deletes it. Error answers decode into the description's Error schema.
// What a client generated from GET /openapi.json gets right, this test
// shows; under runc and runsc.
func TestGeneratedClient(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt string) {
		h := startHost(t, rt)
		alice := h.user("alice")
		ctx := context.Background()
		c, err := genclient.NewClientWithResponses(h.url(), genclient.WithRequestEditorFn(bearer(alice.token)))
		if err != nil {
			t.Fatal(err)
		}

		who, err := c.WhoamiWithResponse(ctx)
		if err != nil || who.JSON200 == nil || who.JSON200.UserId != "alice" || who.JSON200.Admin {
			t.Fatalf("whoami: %v %s", err, body(who))
		}

		// Create from Go source.
		files := readSource(t, filepath.Join(examplesDir, "simple-counter"))
		created, err := c.CreateProgramWithResponse(ctx, genclient.ProgramBody{SrcFiles: &files})
		if err != nil || created.JSON201 == nil {
			t.Fatalf("create: %v %s", err, body(created))
		}
		p := created.JSON201
		if p.State != genclient.StateCreated || !strings.HasPrefix(p.ProgramId, "alice-") || p.BuildId == "" ||
			!strings.HasSuffix(p.ProxyUrl, "/programs/"+p.ProgramId+"/proxy") {
			t.Fatalf("create: %+v", *p)
		}
		id := p.ProgramId

		// Start, and wait until Ready.
		started, err := c.StartProgramWithResponse(ctx, id)
		if err != nil || started.JSON200 == nil || started.JSON200.ProgramId != id {
			t.Fatalf("start: %v %s", err, body(started))
		}
		ready := waitGenState(t, c, id, genclient.StateReady, started.JSON200.Seq, 3*time.Minute)
		if ready.Runtime != rt || ready.ContainerId == "" || ready.ImageId == "" {
			t.Errorf("ready: runtime %q, container %q, image %q", ready.Runtime, ready.ContainerId, ready.ImageId)
		}
		// A second start is refused: 409 in the Error schema.
		again, err := c.StartProgramWithResponse(ctx, id)
		if err != nil || again.JSON409 == nil || again.JSON409.Code != http.StatusConflict || again.JSON409.Message == "" {
			t.Errorf("second start: %v %s", err, body(again))
		}

		// The WatcherAPI through the proxy: its status, then a message.
		status, err := c.ProxyGetWithResponse(ctx, id, "watcher/status")
		if err != nil || status.JSON200 == nil {
			t.Fatalf("watcher status: %v %s", err, body(status))
		}
		if st := *status.JSON200; st["isRunning"] != true || st["state"] == nil {
			t.Errorf("watcher status: %v", st)
		}
		since := time.Now().UTC()
		sent, err := c.ProxyPostWithResponse(ctx, id, "watcher/message", genclient.WatcherRequest{"content": "status"})
		if err != nil || sent.JSON200 == nil || (*sent.JSON200)["status"] != "message sent" {
			t.Fatalf("message: %v %s", err, body(sent))
		}
		// Outside watcher/: 404 from the Host, in the Error schema.
		outside, err := c.ProxyGetWithResponse(ctx, id, "debug/vars")
		if err != nil || outside.JSON404 == nil || outside.JSON404.Code != http.StatusNotFound {
			t.Errorf("proxy outside watcher/: %v %s", err, body(outside))
		}

		// The logs: the program's start line, and its answer to the message.
		deadline := time.Now().Add(30 * time.Second)
		for {
			tail := 2000
			logs, err := c.GetLogsWithResponse(ctx, id, &genclient.GetLogsParams{Tail: &tail})
			if err != nil || logs.JSON200 == nil {
				t.Fatalf("logs: %v %s", err, body(logs))
			}
			l := logs.JSON200
			if l.ProgramId != id || l.ContainerId != ready.ContainerId {
				t.Fatalf("logs of %q, container %q: want %q, %q", l.ProgramId, l.ContainerId, id, ready.ContainerId)
			}
			if strings.Contains(l.Logs, "simple-counter: WatcherAPI on") && strings.Contains(l.Logs, "status: counter is") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no answer to the message in the logs since %s:\n%s", since.Format(time.RFC3339), lastLines(l.Logs, 30))
			}
			time.Sleep(200 * time.Millisecond)
		}

		// Delete; then the program is not found, in the Error schema.
		deleted, err := c.DeleteProgramWithResponse(ctx, id, nil)
		if err != nil || deleted.JSON200 == nil || deleted.JSON200.ProgramId != id || deleted.JSON200.Status != genclient.ProgramDeletedStatusDeleted {
			t.Fatalf("delete: %v %s", err, body(deleted))
		}
		deadline = time.Now().Add(2 * time.Minute)
		for {
			got, err := c.GetProgramWithResponse(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got.JSON404 != nil {
				if got.JSON404.Code != http.StatusNotFound || got.JSON404.Error != "Not Found" || !strings.Contains(got.JSON404.Message, id) {
					t.Errorf("after delete: %+v", *got.JSON404)
				}
				break
			}
			if got.JSON200 == nil || time.Now().After(deadline) {
				t.Fatalf("after delete: %s", body(got))
			}
			time.Sleep(200 * time.Millisecond)
		}

		// Without a token: 401, with its challenge.
		anon, err := genclient.NewClientWithResponses(h.url())
		if err != nil {
			t.Fatal(err)
		}
		list, err := anon.ListProgramsWithResponse(ctx, nil)
		if err != nil || list.JSON401 == nil || list.JSON401.Code != http.StatusUnauthorized ||
			list.Headers401 == nil || list.Headers401.WWWAuthenticate == nil || !strings.HasPrefix(*list.Headers401.WWWAuthenticate, "Bearer") {
			t.Errorf("no token: %v %s", err, body(list))
		}
	})
}

// waitGenState polls the program with the generated client until it is in
// want with a seq at least minSeq. Error (unless wanted) fails at once.
func waitGenState(t *testing.T, c *genclient.ClientWithResponses, id string, want genclient.State, minSeq int64, timeout time.Duration) genclient.Program {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, err := c.GetProgramWithResponse(context.Background(), id)
		if err != nil || got.JSON200 == nil {
			t.Fatalf("get %s: %v %s", id, err, body(got))
		}
		p := *got.JSON200
		if p.State == want && p.Seq >= minSeq {
			return p
		}
		if p.State == genclient.StateError && want != genclient.StateError {
			log, _ := c.GetBuildLogWithResponse(context.Background(), id, nil)
			t.Fatalf("%s is in Error, want %s: %s\nbuild log:\n%s", id, want, p.ErrorMsg, body(log))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: state %s after %s, want %s", id, p.State, timeout, want)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// bearer adds the token to each request of a generated client.
func bearer(token string) genclient.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// body shows a generated client's answer (a *genclient.XxxResponse): its
// status and body.
func body(resp any) string {
	v := reflect.ValueOf(resp)
	if !v.IsValid() || v.IsNil() {
		return "(no answer)"
	}
	code := 0
	if hr, _ := v.Elem().FieldByName("HTTPResponse").Interface().(*http.Response); hr != nil {
		code = hr.StatusCode
	}
	b, _ := v.Elem().FieldByName("Body").Interface().([]byte)
	return fmt.Sprintf("%d %s", code, b)
}
