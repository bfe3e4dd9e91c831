package host_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/store"
)

// TestReleases: each new source is a numbered release (who, when, its
// digest); the same source again is none; a rollback puts the program on
// an earlier release's source and build as a new release, restarts it
// and keeps /state; only the newest KeepReleases are kept, with their
// sources and images, and the rest are collected.
func TestReleases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f := hosttest.OpenFake(t, func(o *host.Options) { o.KeepReleases = 3 })
		ctx := context.Background()
		v1, v2, v3 := hosttest.CounterSource(1), hosttest.CounterSource(2), hosttest.CounterSource(3)
		id := createProgram(t, h, host.CreateRequest{UserID: "alice", By: "root", Files: v1})
		startProgram(t, h, id)
		first := settle(t, h, id, lifecycle.Ready).BuildID
		update := func(files source.Files) string {
			t.Helper()
			if _, err := h.Update(ctx, id, host.UpdateRequest{Files: files, By: "alice"}); err != nil {
				t.Fatal(err)
			}
			if _, err := h.Restart(ctx, id); err != nil {
				t.Fatal(err)
			}
			return settle(t, h, id, lifecycle.Ready).BuildID
		}
		second := update(v2)
		update(v2) // the same source: no release
		releases := func() []store.Release {
			t.Helper()
			rs, err := h.Releases(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return rs
		}
		rs := releases()
		if len(rs) != 2 || rs[0].Number != 2 || rs[0].BuildID != second || rs[0].CreatedBy != "alice" ||
			rs[1].Number != 1 || rs[1].BuildID != first || rs[1].CreatedBy != "root" || rs[1].Digest != source.Digest("", v1) {
			t.Fatalf("releases %+v", rs)
		}

		// /state survives the rollback.
		mark := filepath.Join(h.ProgramDir(id), "state", "mark")
		if err := os.WriteFile(mark, []byte("kept"), 0o644); err != nil {
			t.Fatal(err)
		}
		rel, _, err := h.Rollback(ctx, id, 0, "alice")
		if err != nil {
			t.Fatal(err)
		}
		row := settle(t, h, id, lifecycle.Ready)
		if rel.Number != 3 || rel.Note != "rollback to 1" || rel.BuildID != first || row.BuildID != first {
			t.Errorf("rollback: release %+v, program on build %s; want release 3 on %s", rel, row.BuildID, first)
		}
		if b, err := os.ReadFile(mark); err != nil || string(b) != "kept" {
			t.Errorf("/state after the rollback: %q %v", b, err)
		}
		if src, _ := h.Source(ctx, id); src["main.go"] != v1["main.go"] {
			t.Error("the stored source is not release 1's after the rollback")
		}
		if _, _, err := h.Rollback(ctx, id, 9, "alice"); !errors.Is(err, host.ErrNotFound) {
			t.Errorf("a rollback to a release never made: %v, want ErrNotFound", err)
		}

		// Keep 3: release 1 goes; its build stays only while another
		// release (3) names it, and release 2's build while 2 is kept.
		third := update(v3)
		rs = releases()
		var nums []int
		for _, r := range rs {
			nums = append(nums, r.Number)
		}
		if !slices.Equal(nums, []int{4, 3, 2}) {
			t.Errorf("kept releases %v, want [4 3 2]", nums)
		}
		for _, b := range []string{first, second, third} {
			if !imageExists(t, f, host.ImageTag(b)) {
				t.Errorf("the image of kept build %s is gone", b)
			}
			if _, err := os.Stat(filepath.Join(h.ProgramDir(id), "releases", b)); err != nil {
				t.Errorf("the source of kept build %s: %v", b, err)
			}
		}
		update(hosttest.CounterSource(4)) // release 5: 2 goes, and with it second's build
		if imageExists(t, f, host.ImageTag(second)) {
			t.Error("the image of a build no kept release names was not collected")
		}
		if _, err := os.Stat(filepath.Join(h.ProgramDir(id), "releases", second)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the source of a dropped release: %v", err)
		}
	})
}
