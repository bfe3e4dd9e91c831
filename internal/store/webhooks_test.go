package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestWebhooks(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	w1, err := s.AddWebhook(ctx, Webhook{ID: "w1", UserID: "ann", URL: "https://a.example/h", Secret: "k1",
		Events: []string{"crashed", "oom_killed"}, CrashLoopCrashes: 3, CrashLoopWindow: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddWebhook(ctx, Webhook{ID: "w2", UserID: "bob", ProgramID: "p2", URL: "https://b.example/h", Secret: "k2", CrashLoopCrashes: 5, CrashLoopWindow: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddWebhook(ctx, Webhook{ID: "w1", UserID: "ann", URL: "https://x", Secret: "k"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate id: %v", err)
	}
	if _, err := s.AddWebhook(ctx, Webhook{ID: "w3", UserID: "ann", URL: "https://x"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no secret: %v", err)
	}
	got, err := s.GetWebhook(ctx, "w1")
	if err != nil || !reflect.DeepEqual(got, w1) {
		t.Fatalf("GetWebhook = %+v, %v; want %+v", got, err, w1)
	}
	ann, _ := s.Webhooks(ctx, "ann")
	all, _ := s.Webhooks(ctx, "")
	if len(ann) != 1 || len(all) != 2 {
		t.Fatalf("ann has %d webhooks, all %d", len(ann), len(all))
	}

	for i := range KeepDeliveries + 5 {
		if _, err := s.AddDelivery(ctx, Delivery{WebhookID: "w1", EventID: "e", Kind: "crashed", Attempt: i + 1, At: t0, Outcome: "retrying"}); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := s.Deliveries(ctx, "w1", 0)
	if err != nil || len(ds) != KeepDeliveries || ds[0].Attempt != KeepDeliveries+5 {
		t.Fatalf("%d deliveries kept, newest attempt %d, %v", len(ds), ds[0].Attempt, err)
	}
	if ds, _ := s.Deliveries(ctx, "w1", 3); len(ds) != 3 {
		t.Fatalf("limit 3: %d", len(ds))
	}
	if _, err := s.AddDelivery(ctx, Delivery{WebhookID: "gone", EventID: "e", Kind: "crashed", Attempt: 1, At: t0, Outcome: "failed"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delivery for a missing webhook: %v", err)
	}

	ids, err := s.DeleteProgramWebhooks(ctx, "p2")
	if err != nil || !reflect.DeepEqual(ids, []string{"w2"}) {
		t.Fatalf("DeleteProgramWebhooks = %v, %v", ids, err)
	}
	if err := s.DeleteWebhook(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWebhook(ctx, "w1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if ds, _ := s.Deliveries(ctx, "w1", 0); len(ds) != 0 {
		t.Fatalf("%d deliveries outlived their webhook", len(ds))
	}
}
