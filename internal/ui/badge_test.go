package ui

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestBadgeAndProblem: what the programs list and the program page say of
// a program, from its API view: a crash loop's countdown, a queued build,
// and a Ready program whose WatcherAPI stopped answering.
func TestBadgeAndProblem(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, view          string
		label, detail, says string
	}{
		{"ready", `{"state":"Ready","watcher_api":{"answering":true,"since":"2026-11-30T11:00:00Z"}}`, "Ready", "", ""},
		{"not answering", `{"state":"Ready","watcher_api":{"answering":false,"since":"2026-11-30T11:58:00Z","problem":"WatcherAPI answered 503 Service Unavailable"}}`,
			"Not answering", "its WatcherAPI, for 2m 0s", "has not answered the Host's checks for 2m 0s (WatcherAPI answered 503 Service Unavailable)"},
		{"restarting", `{"state":"Error","error_msg":"exited with code 3","restart_count":1,"next_restart_at":"2026-11-30T12:00:04Z","last_exit_code":3}`,
			"Restarting", "restart #2", "Next automatic restart in 4 s (restart #2)."},
		{"queued", `{"state":"Building","queue_position":3}`, "Building", "queued, 2 build(s) ahead", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p program
			if err := json.Unmarshal([]byte(tc.view), &p); err != nil {
				t.Fatal(err)
			}
			b := programBadge(p, now)
			if b.Label != tc.label || b.Detail != tc.detail {
				t.Errorf("badge %q (%q), want %q (%q)", b.Label, b.Detail, tc.label, tc.detail)
			}
			if got := problem(p, now); !strings.Contains(got, tc.says) || (tc.says == "" && got != "") {
				t.Errorf("problem %q, want it to say %q", got, tc.says)
			}
		})
	}
}
