package dashboard_test

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lexigram/events/node/dashboard"
)

// poisonEntries appends n deposits the mailer refuses and waits for
// the DLQ to hold want entries of it; it returns their positions.
func poisonEntries(t *testing.T, e *env, n, want int) []uint64 {
	t.Helper()
	var positions []uint64
	for i := range n {
		res := e.append(t, fmt.Sprintf("acc-p%d", i%4), "", Deposited{Amount: 100 + i, Note: "poison"})
		positions = append(positions, res.LastPosition)
	}
	waitUntil(t, fmt.Sprintf("%d dead letters", want), func() bool { got, _ := e.n.DLQ().Size(t.Context(), "mailer"); return got == want })
	return positions
}

// handledAll reports whether the mailer handled every position.
func (e *env) handledAll(positions []uint64) bool {
	e.mailer.mu.Lock()
	defer e.mailer.mu.Unlock()
	for _, p := range positions {
		if !e.mailer.handled[p] {
			return false
		}
	}
	return true
}

// TestDeadLetterBulkReplay: "replay all" of a handler's dead letters
// asks first, saying how many, then replays them in the background
// with its progress live on the page; the handler receives every
// event, the list empties, and the action is logged with who did it.
func TestDeadLetterBulkReplay(t *testing.T) {
	const n = 12
	e := start(t, dashboard.Options{}, nil)
	positions := poisonEntries(t, e, n, n)

	// The replay holds before its 6th entry until released, so that the
	// test sees it under way.
	var steps atomic.Int32
	reached, release := make(chan struct{}), make(chan struct{})
	dashboard.SetBulkStepHook(func() {
		if steps.Add(1) == 6 {
			close(reached)
			<-release
		}
	})
	t.Cleanup(func() { dashboard.SetBulkStepHook(nil) })

	tb := newTab(t)
	tb.do("open the dead letters", chromedp.Navigate(e.url("/dlq")), chromedp.WaitVisible(chromedp.ID("replay-all-mailer")))
	if got := tb.text("#bulk-form-mailer label"); !strings.Contains(got, fmt.Sprintf("mailer: %d entries", n)) {
		t.Errorf("the bulk form says %q: want the handler and its %d entries", got, n)
	}
	tb.screen("dead-letters-bulk")

	e.mailer.mu.Lock()
	e.mailer.fixed = true
	e.mailer.mu.Unlock()
	tb.clickTo("ask to replay all", "#replay-all-mailer", "#confirm")
	if q := tb.text("h1"); q != fmt.Sprintf("Replay %d dead letters of handler mailer?", n) {
		t.Errorf("the confirmation asks %q", q)
	}
	tb.screen("confirm-bulk-replay")
	if steps.Load() != 0 {
		t.Fatal("the bulk replay began before the confirmation")
	}
	tb.do("give a reason", chromedp.SendKeys(chromedp.ID("reason"), "fixed the mailer"))
	tb.clickTo("confirm the bulk replay", "#confirm", ".notice")
	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the bulk replay did not reach its 6th entry within 30s")
	}
	job := `tr[data-job][data-handler="mailer"][data-action="replay"]`
	tb.waitFor("the bulk replay under way", fmt.Sprintf(`document.querySelector('%s[data-finished="no"][data-done="5"][data-total="%d"]') !== null`, job, n))
	if got := tb.text(job); !strings.Contains(got, fmt.Sprintf("5 of %d replayed", n)) || !strings.Contains(got, "127.0.0.1") {
		t.Errorf("the bulk replay under way shows %q: want its progress and who started it", got)
	}
	tb.screen("bulk-replay-progress")
	close(release)
	tb.waitFor("the bulk replay finished", fmt.Sprintf(`document.querySelector('%s[data-finished="yes"][data-done="%d"]:not([data-error])') !== null`, job, n))
	waitUntil(t, "the handler receives every replayed event", func() bool { return e.handledAll(positions) })
	tb.waitFor("the list empty", `document.querySelector("#none") !== null && document.querySelector("tr[data-entry]") === null`)
	if size, err := e.n.DLQ().Size(t.Context(), "mailer"); err != nil || size != 0 {
		t.Errorf("DLQ size %d (%v) after the bulk replay, want 0", size, err)
	}
	tb.screen("bulk-replay-done")
	checkActions(t, e, []string{"action=dlq.replay-all target=mailer"})
	if got := e.log.actions()[0]; !strings.Contains(got, fmt.Sprintf("entries=%d", n)) || !strings.Contains(got, "reason=fixed the mailer") {
		t.Errorf("the bulk replay is logged as %q: want its count and reason", got)
	}
	waitUntil(t, "the finish logged", func() bool {
		return e.log.has("dashboard: bulk action finished", fmt.Sprintf("done=%d", n), "127.0.0.1")
	})
}

// TestDeadLetterBulkDiscardSince: "discard all" since a time takes only
// the entries written since then and until the confirmation was shown,
// discards them, and the handler never gets their events.
func TestDeadLetterBulkDiscardSince(t *testing.T) {
	e := start(t, dashboard.Options{}, nil)
	old := poisonEntries(t, e, 3, 3)
	cutoff := time.Now()
	recent := poisonEntries(t, e, 2, 5)

	tb := newTab(t)
	tb.do("open the handler's dead letters", chromedp.Navigate(e.url("/dlq?handler=mailer")), chromedp.WaitVisible(chromedp.ID("since-mailer")),
		chromedp.SendKeys(chromedp.ID("since-mailer"), cutoff.UTC().Format(time.RFC3339Nano)))
	tb.clickTo("ask to discard those since the cutoff", "#discard-all-mailer", "#confirm")
	if q := tb.text("h1"); !strings.HasPrefix(q, "Discard 2 dead letters of handler mailer dead-lettered since ") {
		t.Errorf("the confirmation asks %q: want the 2 entries since the cutoff", q)
	}
	tb.screen("confirm-bulk-discard")
	// An entry written after the confirmation was shown is not taken.
	later := poisonEntries(t, e, 1, 6)
	tb.clickTo("confirm the bulk discard", "#confirm", ".notice")
	job := `tr[data-job][data-handler="mailer"][data-action="discard"]`
	tb.waitFor("the bulk discard finished", `document.querySelector('`+job+`[data-finished="yes"][data-done="2"][data-total="2"]:not([data-error])') !== null`)
	var left []uint64
	for entry, err := range e.n.DLQ().List(t.Context(), "mailer") {
		if err != nil {
			t.Fatal(err)
		}
		left = append(left, entry.ID.Position)
	}
	if want := append(slices.Clone(old), later...); !slices.Equal(left, want) {
		t.Errorf("after discarding those since the cutoff, the entries of %v are left, want %v (the discarded: %v)", left, want, recent)
	}
	tb.waitFor("the discarded entries gone from the list", fmt.Sprintf(`document.querySelectorAll("tr[data-entry]").length === 4 && document.querySelector('tr[data-entry="mailer/%d"]') === null`, recent[0]))
	tb.screen("bulk-discard-done")
	e.mailer.mu.Lock()
	for _, p := range recent {
		if e.mailer.handled[p] {
			t.Errorf("the discarded event at %d reached the handler", p)
		}
	}
	e.mailer.mu.Unlock()
	checkActions(t, e, []string{"action=dlq.discard-all target=mailer"})

	// A "since" that is no time is refused, saying what to give.
	status, body := post(t, e, "/dlq/mailer/all/discard", "since=yesterday")
	if status != 422 || !strings.Contains(body, "RFC 3339") {
		t.Errorf("since=yesterday answered %d: %.300s", status, body)
	}
	if status, body := post(t, e, "/dlq/mailer/all/purge", ""); status != 404 {
		t.Errorf("an unknown bulk action answered %d: %.300s", status, body)
	}
}
