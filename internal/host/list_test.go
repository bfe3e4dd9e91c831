package host_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
)

// TestListFromMemory: Host.List answers from memory exactly what the store
// answers for the same filter (order, paging, total), with programs of
// several users in several states, some created at the same instant (the
// id breaks the tie) and some later; also after a delete.
func TestListFromMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFakeEngine(t, nil, fake.Hooks{})
		h := d.Open(t, t.TempDir())
		ctx := context.Background()
		var ids []string
		for i := range 12 {
			if i%4 == 0 {
				time.Sleep(time.Second) // the others share a creation time
			}
			user := []string{"alice", "bob", "carol"}[i%3]
			ids = append(ids, createProgram(t, h, dockerfileProgram(user, fmt.Sprint(i))))
		}
		for _, id := range ids[:5] {
			if _, err := h.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
			settle(t, h, id, lifecycle.Ready)
		}
		if _, err := h.Stop(ctx, ids[1]); err != nil {
			t.Fatal(err)
		}
		settle(t, h, ids[1], lifecycle.Stopped)

		same := func(when string) {
			t.Helper()
			for _, f := range []store.ProgramFilter{
				{},
				{Limit: 5},
				{Limit: 5, Offset: 5},
				{Limit: 5, Offset: 10},
				{Offset: 11},
				{Offset: 40},
				{UserID: "bob"},
				{UserID: "bob", Limit: 2, Offset: 1},
				{UserID: "nobody"},
				{State: lifecycle.Ready},
				{State: lifecycle.Stopped},
				{State: lifecycle.Created, UserID: "carol"},
				{State: lifecycle.Error},
			} {
				mem, memTotal, err := h.List(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				db, dbTotal, err := h.StoreList(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				if memTotal != dbTotal || len(mem) != len(db) {
					t.Fatalf("%s, %+v: memory %d of %d, store %d of %d", when, f, len(mem), memTotal, len(db), dbTotal)
				}
				for i := range mem {
					if !reflect.DeepEqual(mem[i], db[i]) {
						t.Fatalf("%s, %+v: row %d\nmemory %+v\nstore  %+v", when, f, i, mem[i], db[i])
					}
				}
			}
		}
		same("after start and stop")
		if err := h.Delete(ctx, ids[3]); err != nil {
			t.Fatal(err)
		}
		same("after a delete")
	})
}
