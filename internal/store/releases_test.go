package store

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/hershyorg/hershy/internal/lifecycle"
)

// TestReleases: numbers count up per program and are never reused, only
// the newest kept ones stay, a kept release keeps its build from
// UnusedBuilds, and releases go with their program.
func TestReleases(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for _, id := range []string{"b1", "b2", "b3", "b4"} {
		if _, err := s.UpsertBuild(ctx, Build{ID: id, Status: BuildOK, StartedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate(t, s, Program{ID: "a", UserID: "ann", Program: lifecycle.Program{BuildID: "b4"}})
	mustCreate(t, s, Program{ID: "other", UserID: "ann", Program: lifecycle.Program{BuildID: "b4"}})
	add := func(id, build string) Release {
		t.Helper()
		r, err := s.AddRelease(ctx, Release{ProgramID: id, BuildID: build, CreatedBy: "ann", Digest: "d-" + build}, 3)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	numbers := func(id string) []int {
		t.Helper()
		rs, err := s.Releases(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var ns []int
		for _, r := range rs {
			ns = append(ns, r.Number)
		}
		return ns
	}
	for i, b := range []string{"b1", "b2", "b3", "b4"} {
		if r := add("a", b); r.Number != i+1 || r.CreatedAt.IsZero() {
			t.Errorf("release %d: %+v", i+1, r)
		}
	}
	if r := add("other", "b4"); r.Number != 1 {
		t.Errorf("another program's first release is number %d", r.Number)
	}
	if got := numbers("a"); !slices.Equal(got, []int{4, 3, 2}) {
		t.Errorf("kept releases %v, want the newest three, newest first", got)
	}
	if _, err := s.GetRelease(ctx, "a", 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("a dropped release: %v, want ErrNotFound", err)
	}
	if r, err := s.GetRelease(ctx, "a", 2); err != nil || r.BuildID != "b2" || r.Digest != "d-b2" || r.CreatedBy != "ann" {
		t.Errorf("release 2: %+v, %v", r, err)
	}
	// b1's release is dropped: its build is unused; b2 and b3 are kept by theirs.
	if got, _ := s.UnusedBuilds(ctx); !slices.Equal(got, []string{"b1"}) {
		t.Errorf("UnusedBuilds = %v, want [b1]", got)
	}
	if err := s.DeleteProgram(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got := numbers("a"); len(got) != 0 {
		t.Errorf("releases after the program's delete: %v", got)
	}
	if got, _ := s.UnusedBuilds(ctx); !slices.Equal(got, []string{"b1", "b2", "b3"}) {
		t.Errorf("UnusedBuilds after the delete = %v", got)
	}
	if _, err := s.AddRelease(ctx, Release{ProgramID: "gone", BuildID: "b1"}, 3); !errors.Is(err, ErrNotFound) {
		t.Errorf("a release of a missing program: %v, want ErrNotFound", err)
	}
}
