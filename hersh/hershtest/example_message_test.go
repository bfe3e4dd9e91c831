package hershtest_test

// Pattern: a message handler. The bot keeps a shopping list in context
// state and answers "add <item>", "done <item>" and "quit"; the test sends
// messages (directly and through the WatcherAPI) and checks the state, the
// runs and how the watcher ended.

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/hershyorg/hershy/hersh"
	"github.com/hershyorg/hershy/hersh/hershtest"
)

var shoppingList = hersh.NewKey[[]string]("list")

func shopping(c *hersh.Context) error {
	m := c.Message()
	if m == nil {
		return nil // the start run: nothing to do
	}
	verb, item, _ := strings.Cut(m.Content, " ")
	switch verb {
	case "add":
		_, err := shoppingList.Update(c, func(l []string) ([]string, error) {
			return append(slices.Clone(l), item), nil
		})
		return err
	case "done":
		_, err := shoppingList.Update(c, func(l []string) ([]string, error) {
			i := slices.Index(l, item)
			if i < 0 {
				return nil, fmt.Errorf("%q is not on the list", item)
			}
			return slices.Delete(slices.Clone(l), i, i+1), nil
		})
		return err
	case "quit":
		return hersh.Stop("asked to quit")
	}
	return fmt.Errorf("unknown command %q", m.Content)
}

func TestMessageHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hershtest.Start(t, hersh.Config{}, shopping)

		h.Send("add milk") // returns once the message has run
		h.Send("add eggs")
		h.Send("done milk")
		if got, _ := shoppingList.Get(h.W); !slices.Equal(got, []string{"eggs"}) {
			t.Errorf("list = %q, want [eggs]", got)
		}

		// A failed run is an outcome like any other: Send returns it.
		if r := h.Send("done bread"); r.Success || r.Error != `"bread" is not on the list` {
			t.Errorf("done bread: %+v", r)
		}
		// The run failed, so the watcher now waits out a backoff (1s by
		// default) before a recovery run; messages wait with it.
		h.WantState(hersh.StateWaitRecover)
		h.Advance(hersh.DefaultBackoffBase)
		h.WantState(hersh.StateReady)

		// The WatcherAPI, as the Host's proxy reaches it.
		if rec := h.API("POST", "/watcher/message", `{"content":"add bread"}`); rec.Code != 200 {
			t.Fatalf("POST /watcher/message: %d %s", rec.Code, rec.Body)
		}
		var status struct {
			State string `json:"state"`
			Runs  int    `json:"runs"`
		}
		h.GetJSON("/watcher/status", &status)
		if status.State != "Ready" || status.Runs != 7 {
			t.Errorf("status: %+v", status)
		}

		h.Send("quit")
		h.WantState(hersh.StateStopped)
		want := []string{"start", "message:add milk", "message:add eggs", "message:done milk",
			"message:done bread", "recovery", "message:add bread", "message:quit"}
		if got := hershtest.Triggers(h.Runs()); !slices.Equal(got, want) {
			t.Errorf("runs:\n got %q\nwant %q", got, want)
		}
	})
}
