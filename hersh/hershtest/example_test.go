package hershtest_test

// Runnable examples of the parts of the kit that need no bubble. The
// patterns that drive a watcher (a message handler, a ticking strategy, a
// crash and backoff, durable state across a restart) need a synctest
// bubble, which only a test can open: they are the tests in the
// example_*_test.go files, shown in the package documentation.

import (
	"context"
	"errors"
	"fmt"

	"github.com/hershyorg/hershy/hersh"
	"github.com/hershyorg/hershy/hersh/hershtest"
)

// A Value stands in for what a WatchCall polls: its Poll reports a change
// once per Set, and an error while Fail is in force.
func ExampleValue() {
	var price hershtest.Value[float64]
	poll := func() {
		v, changed, err := price.Poll(context.Background(), 0)
		fmt.Println(v, changed, err)
	}
	poll() // nothing set yet
	price.Set(101.5)
	poll()
	poll() // unchanged since the last poll
	price.Fail(errors.New("exchange unreachable"))
	poll()
	price.Set(101.5) // the same value again is a new update
	poll()
	fmt.Println("polls:", price.Polls())
	// Output:
	// 0 false <nil>
	// 101.5 true <nil>
	// 101.5 false <nil>
	// 0 false exchange unreachable
	// 101.5 true <nil>
	// polls: 5
}

// Triggers turns runs into short strings, so a test can compare what ran
// with one slices.Equal.
func ExampleTriggers() {
	runs := []hersh.EffectResult{
		{Trigger: hersh.TriggerStart},
		{Trigger: hersh.TriggerMessage, Message: "buy 2"},
		{Trigger: hersh.TriggerVars, Vars: []string{"price", "tick"}},
		{Trigger: hersh.TriggerRecovery},
	}
	fmt.Printf("%q\n", hershtest.Triggers(runs))
	// Output:
	// ["start" "message:buy 2" "vars:price,tick" "recovery"]
}
