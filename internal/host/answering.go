package host

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/hershyorg/hershy/internal/lifecycle"
)

// Ready programs are asked again, every Options.AnswerEvery, the question
// the readiness probe asked at their start (readyOnce). A program whose
// WatcherAPI stops answering (hung, deadlocked, or answering "not ready")
// stays Ready, since its process is alive and a restart is the operator's
// call; but the Host says so: Answering, the API's program view, the
// metrics and the dashboard show "not answering" from the first check it
// failed.

// DefaultAnswerEvery is the default of Options.AnswerEvery.
const DefaultAnswerEvery = 30 * time.Second

// answerTimeout bounds one check: an answer not begun by then is none.
const answerTimeout = 5 * time.Second

// answerChecks is how many programs are checked at once.
const answerChecks = 8

// newChecker is the checks' client: a connection per check, closed after
// it. A check every 30 s does not need a kept connection, and a thousand
// programs' kept connections would cost the Host megabytes.
func newChecker(tr *http.Transport) *http.Client {
	tr = tr.Clone()
	tr.DisableKeepAlives = true
	return &http.Client{Transport: tr}
}

// Answer is what the Host last learnt of a Ready program's WatcherAPI.
type Answer struct {
	Answering bool
	// Since is when it was first seen in this condition (its first failed
	// check, or the first answer after failures; the start's probe at first).
	Since time.Time
	// Problem is the last check's failure ("" while answering).
	Problem string
}

type answerState struct {
	container string
	Answer
}

type answers struct {
	mu sync.Mutex
	by map[string]answerState // program id -> the last check of its container
}

// Answering reports what the last check of program id's WatcherAPI found;
// ok is false unless the program is Ready (a program that just became
// Ready answered its start's probe).
func (h *Host) Answering(id string) (a Answer, ok bool) {
	s, err := h.sup(id)
	if err != nil {
		return Answer{}, false
	}
	p := s.Program()
	if p.State != lifecycle.Ready || p.ContainerID == "" {
		return Answer{}, false
	}
	h.answers.mu.Lock()
	defer h.answers.mu.Unlock()
	st, known := h.answers.by[id]
	if !known || st.container != p.ContainerID {
		return Answer{Answering: true, Since: p.HealthySince}, true
	}
	return st.Answer, true
}

// checkAnswers asks every Ready program once, a few at a time, and
// forgets the programs that are no longer Ready.
func (h *Host) checkAnswers(ctx context.Context) {
	type target struct{ id, container string }
	h.mu.Lock()
	var ready []target
	for id, s := range h.sups {
		if p := s.Program(); p.State == lifecycle.Ready && p.ContainerID != "" {
			ready = append(ready, target{id, p.ContainerID})
		}
	}
	h.mu.Unlock()
	keep := make(map[string]bool, len(ready))
	for _, r := range ready {
		keep[r.id] = true
	}
	h.answers.mu.Lock()
	for id := range h.answers.by {
		if !keep[id] {
			delete(h.answers.by, id)
		}
	}
	h.answers.mu.Unlock()

	slots := make(chan struct{}, answerChecks)
	var wg sync.WaitGroup
	for _, r := range ready {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-slots }()
			cctx, cancel := context.WithTimeout(ctx, answerTimeout)
			err := readyOnce(cctx, h.checker, watcherURL(r.container))
			cancel()
			if ctx.Err() != nil {
				return // the Host is closing: nothing was learnt
			}
			h.recordAnswer(r.id, r.container, err)
		})
	}
	wg.Wait()
}

func (h *Host) recordAnswer(id, container string, err error) {
	now := time.Now()
	h.answers.mu.Lock()
	defer h.answers.mu.Unlock()
	if h.answers.by == nil {
		h.answers.by = map[string]answerState{}
	}
	prev, known := h.answers.by[id]
	if !known || prev.container != container {
		prev = answerState{container: container, Answer: Answer{Answering: true, Since: now}}
	}
	next := prev
	next.Answering, next.Problem = err == nil, ""
	if err != nil {
		next.Problem = h.paths.scrub(err.Error())
	}
	if next.Answering != prev.Answering {
		next.Since = now
		if err != nil {
			h.log.Warn("program's WatcherAPI does not answer", "program", id, "err", err)
		} else {
			h.log.Info("program's WatcherAPI answers again", "program", id)
		}
	}
	h.answers.by[id] = next
}
