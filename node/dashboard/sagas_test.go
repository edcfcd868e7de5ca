package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/lexigram/events/node/dashboard"
	"github.com/lexigram/events/sagas"
)

// greetingReadable says whether a greeting's second version decodes: the
// "fix" an operator makes before retrying a parked instance. The tests
// of the package run one at a time, so one flag serves them.
var greetingReadable atomic.Bool

// Greeting is the test saga's data; its second version does not decode
// until greetingReadable, so the saga's second step parks the instance.
type Greeting struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
}

func (g *Greeting) UnmarshalJSON(b []byte) error {
	type plain Greeting
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	if p.Version > 1 && !greetingReadable.Load() {
		return fmt.Errorf("greeting version %d is not known yet", p.Version)
	}
	*g = Greeting(p)
	return nil
}

// greetingSaga writes its data's second version in its first step and
// reads it in its second.
func greetingSaga() *sagas.Definition[Greeting] {
	return sagas.Define[Greeting]("greeting").
		Step("upgrade", func(_ context.Context, sc *sagas.Context[Greeting]) error {
			sc.Data.Version = 2
			return nil
		}).
		Step("greet", func(context.Context, *sagas.Context[Greeting]) error { return nil })
}

func TestSagaRetryMovesAParkedInstance(t *testing.T) {
	greetingReadable.Store(false)
	e := start(t, dashboard.Options{}, func(e *env) {
		if err := e.n.AddSaga(t.Context(), greetingSaga()); err != nil {
			t.Fatal(err)
		}
	})
	op := e.n.Sagas().Operator()
	in, err := e.n.Sagas().Start(t.Context(), "greeting", "g-1", Greeting{Name: "ada", Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	state := func() sagas.State {
		d, err := op.Show(t.Context(), in.ID)
		if err != nil {
			t.Fatal(err)
		}
		return d.State
	}

	tb := newTab(t)
	tb.do("open the sagas", chromedp.Navigate(e.url("/sagas")), chromedp.WaitReady(chromedp.CSS(`body[data-live-open="yes"]`)))
	row := fmt.Sprintf(`tr[data-saga=%q]`, in.ID)
	tb.waitFor("the parked instance listed", fmt.Sprintf(`document.querySelector(%s) !== null && document.querySelector('tr[data-type="greeting"][data-state="PARKED"]') !== null`, jsString(row)))
	if got := tb.text(row); !strings.Contains(got, "PARKED") || !strings.Contains(got, "does not decode") {
		t.Errorf("the parked instance shows %q: want its state and why", got)
	}
	tb.screen("sagas-parked")

	tb.clickTo("open the instance", row+" a", "#retry")
	if got := tb.text("#saga-state"); !strings.Contains(got, "PARKED") {
		t.Errorf("the instance's state shows %q, want PARKED", got)
	}
	tb.screen("saga-parked")

	greetingReadable.Store(true) // the operator fixed what the step reads
	tb.clickTo("ask for a retry", "#retry", "#confirm")
	if q := tb.text("h1"); q != "Retry saga "+in.ID+"?" {
		t.Errorf("confirmation asks %q", q)
	}
	if s := state(); s != sagas.Parked {
		t.Fatalf("the instance is %s before the retry was confirmed, want PARKED", s)
	}
	tb.clickTo("confirm the retry", "#confirm", ".notice")
	waitUntil(t, "the retried instance completes", func() bool { return state() == sagas.Completed })

	tb.do("open the sagas again", chromedp.Navigate(e.url("/sagas")), chromedp.WaitReady(chromedp.CSS(`body[data-live-open="yes"]`)))
	tb.waitFor("the instance counted completed, none waiting", fmt.Sprintf(`document.querySelector('tr[data-type="greeting"][data-state="COMPLETED"]') !== null && document.querySelector(%s) === null && document.querySelector("#saga-attention") === null`, jsString(row)))
	tb.screen("sagas-after-retry")
	checkActions(t, e, []string{"action=saga.retry target=" + in.ID})

	// Finished, the instance offers no retry any more.
	tb.do("open the instance again", chromedp.Navigate(e.url("/sagas/"+in.ID)), chromedp.WaitVisible(chromedp.ID("saga-state")))
	if got := tb.text("#saga-state"); !strings.Contains(got, "COMPLETED") {
		t.Errorf("the retried instance shows %q, want COMPLETED", got)
	}
	if n := eval[int](tb, `document.querySelectorAll("#retry").length`); n != 0 {
		t.Error("a completed instance offers a retry")
	}
}
