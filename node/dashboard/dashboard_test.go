package dashboard_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lexigram/events/node/dashboard"
)

// seedAccounts stores two accounts sharing a correlation ID.
func seedAccounts(t *testing.T, e *env) {
	e.append(t, "acc-1", "corr-42", Opened{Owner: "ada"}, Deposited{Amount: 5, Note: "first"})
	e.append(t, "acc-2", "corr-42", Opened{Owner: "grace"})
	e.append(t, "acc-3", "other", Opened{Owner: "linus"})
}

func TestOverviewShowsServerDurabilityAndStreamsLive(t *testing.T) {
	e := start(t, dashboard.Options{}, nil)
	seedAccounts(t, e)
	tb := newTab(t)
	tb.do("open the overview", chromedp.Navigate(e.url("/")), chromedp.WaitVisible(chromedp.CSS(`tr[data-stream="EVENTS"]`)))
	if got, want := tb.text("#server-version"), e.n.Conn().ConnectedServerVersion(); got != want || want == "" {
		t.Errorf("server version %q, want %q", got, want)
	}
	info, err := e.n.JetStream().AccountInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := tb.text("#api-level"); got != strconv.Itoa(info.API.Level) || info.API.Level == 0 {
		t.Errorf("API level %q, want %d", got, info.API.Level)
	}
	if got, want := tb.text("#durability"), e.n.Store().Durability().String(); !strings.Contains(got, want) {
		t.Errorf("durability %q, want it to name %q", got, want)
	}
	if n := eval[int](tb, `document.querySelectorAll("#durability-warning").length`); n != 0 {
		t.Errorf("a durability warning shows on a node at its required level")
	}
	messages := func() string {
		return eval[string](tb, `document.querySelector('tr[data-stream="EVENTS"] td[data-messages]').getAttribute("data-messages")`)
	}
	if got := messages(); got != "4" {
		t.Errorf("EVENTS shows %s messages, want 4", got)
	}
	if subjects := tb.text(`tr[data-stream="EVENTS"] td code`); !strings.Contains(subjects, "events.>") {
		t.Errorf("EVENTS subjects %q, want events.>", subjects)
	}
	tb.do("wait for the live stream", chromedp.WaitReady(chromedp.CSS(`body[data-live-open="yes"]`)))
	tb.screen("overview")

	eval[bool](tb, `window.notReloaded = true`)
	eval[bool](tb, `(window.eventsRow = document.querySelector('tr[data-stream="EVENTS"]')) !== null`)
	e.append(t, "acc-1", "", Deposited{Amount: 7})
	tb.waitFor("the live update of the message count", `document.querySelector('tr[data-stream="EVENTS"] td[data-messages="5"]') !== null`)
	if !eval[bool](tb, `window.notReloaded === true`) {
		t.Error("the page reloaded to show the append")
	}
	// Updated in place: an element a user (or a test) holds stays in the
	// page.
	if !eval[bool](tb, `window.eventsRow === document.querySelector('tr[data-stream="EVENTS"]') && window.eventsRow.isConnected`) {
		t.Error("the live update replaced the stream's row instead of changing its figures")
	}
}

func TestAggregateHistoryCorrelationAndLiveAppend(t *testing.T) {
	e := start(t, dashboard.Options{}, nil)
	seedAccounts(t, e)
	tb := newTab(t)
	tb.do("open the search", chromedp.Navigate(e.url("/aggregates")), chromedp.WaitVisible(chromedp.ID("type")),
		chromedp.SendKeys(chromedp.ID("type"), "account"), chromedp.SendKeys(chromedp.ID("id"), "acc-1"))
	tb.clickTo("search for acc-1", "#search", "#history-rows tr")
	if h1 := tb.text("h1"); h1 != "Aggregate account/acc-1" {
		t.Errorf("heading %q", h1)
	}
	rows := eval[[]string](tb, `[...document.querySelectorAll("#history-rows tr")].map(r => r.innerText)`)
	if len(rows) != 2 {
		t.Fatalf("%d events shown, want 2: %q", len(rows), rows)
	}
	for i, want := range []string{"test.opened", "test.deposited"} {
		if !strings.Contains(rows[i], want) || !strings.Contains(rows[i], "corr-42") || !strings.Contains(rows[i], "source") {
			t.Errorf("event %d shows %q: want its type %s, correlation corr-42 and metadata", i+1, rows[i], want)
		}
	}
	if !strings.Contains(rows[0], `"owner": "ada"`) || !strings.Contains(rows[1], `"amount": 5`) {
		t.Errorf("the decoded events are not shown as JSON: %q", rows)
	}
	tb.do("wait for the live stream", chromedp.WaitReady(chromedp.CSS(`body[data-live-open="yes"]`)))
	tb.screen("aggregate-history")

	eval[bool](tb, `window.notReloaded = true`)
	res := e.append(t, "acc-1", "", Deposited{Amount: 9, Note: "live"})
	e.append(t, "acc-2", "", Deposited{Amount: 1}) // another aggregate: not shown here
	tb.waitFor("the appended event", fmt.Sprintf(`document.querySelector('#history-rows tr[data-position="%d"]') !== null`, res.LastPosition))
	if n := eval[int](tb, `document.querySelectorAll("#history-rows tr").length`); n != 3 {
		t.Errorf("%d events after the live append, want 3", n)
	}
	if !eval[bool](tb, `window.notReloaded === true`) {
		t.Error("the page reloaded to show the append")
	}

	tb.clickTo("follow the correlation", `#history-rows a[href$="/correlations/corr-42"]`, "#correlation-rows tr")
	aggs := eval[[]string](tb, `[...document.querySelectorAll("#correlation-rows tr")].map(r => r.querySelector("dd a").innerText)`)
	if want := []string{"account/acc-1", "account/acc-1", "account/acc-2"}; !slices.Equal(aggs, want) {
		t.Errorf("correlation corr-42 shows events of %q, want %q", aggs, want)
	}
	tb.screen("correlation")

	tb.do("list the type", chromedp.Navigate(e.url("/aggregates?type=account")), chromedp.WaitVisible(chromedp.CSS("#aggregates")))
	ids := eval[[]string](tb, `[...document.querySelectorAll("#aggregates tbody a")].map(a => a.innerText)`)
	if !slices.Equal(ids, []string{"acc-1", "acc-2", "acc-3"}) {
		t.Errorf("aggregates of type account: %q", ids)
	}
	tb.screen("aggregates")
}

func TestProjectionRebuildShowsProgressAndFinishes(t *testing.T) {
	e := start(t, dashboard.Options{}, func(e *env) {
		for i := range 10 {
			var evs []any
			for j := range 20 {
				evs = append(evs, Deposited{Amount: i*20 + j})
			}
			e.append(t, fmt.Sprintf("acc-%d", i), "", evs...)
		}
		e.balances.hold = 100
	})
	tb := newTab(t)
	tb.do("open the projections", chromedp.Navigate(e.url("/projections")), chromedp.WaitVisible(chromedp.CSS(`tr[data-projection="balances"]`)))
	tb.waitFor("the projection live at the head", `document.querySelector('tr[data-projection="balances"][data-state="LIVE"] td[data-lag="0"]') !== null`)
	tb.screen("projections")

	tb.clickTo("ask for a rebuild", "#rebuild-balances", "#confirm")
	if q := tb.text("h1"); q != "Rebuild projection balances?" {
		t.Errorf("confirmation asks %q", q)
	}
	tb.screen("confirm-rebuild")
	tb.clickTo("confirm the rebuild", "#confirm", ".notice")
	select {
	case <-e.balances.holding:
	case <-time.After(30 * time.Second):
		t.Fatal("the rebuild did not reach its held event within 30s")
	}
	tb.waitFor("the rebuild in progress", `(() => { const r = document.querySelector('.rebuild[data-finished="no"]'); return r !== null && +r.dataset.total === 200 && +r.dataset.done > 0 && +r.dataset.done < 200 })()`)
	tb.screen("rebuild-progress")
	eval[bool](tb, `(window.pauseButton = document.getElementById("pause-balances")) !== null`)
	close(e.balances.release)
	tb.waitFor("the rebuild finished", `(() => { const r = document.querySelector('.rebuild[data-finished="yes"]'); return r !== null && r.dataset.done === r.dataset.total })()`)
	if !eval[bool](tb, `window.pauseButton === document.getElementById("pause-balances") && window.pauseButton.isConnected`) {
		t.Error("the live updates of the rebuild replaced the pause button instead of updating the row around it")
	}
	if gen, _ := e.balances.Active(t.Context()); gen != 2 {
		t.Errorf("the active generation is %d after the rebuild, want 2", gen)
	}

	tb.clickTo("ask for a pause", "#pause-balances", "#confirm")
	tb.clickTo("confirm the pause", "#confirm", ".notice")
	tb.waitFor("the projection stopped", `document.querySelector('tr[data-projection="balances"][data-state="STOPPED"]') !== null`)
	e.balances.mu.Lock()
	before := e.balances.applied[2]
	e.balances.mu.Unlock()
	res := e.append(t, "acc-0", "", Deposited{Amount: 1})
	// The notice shows once the resume is done and logged; the live
	// update of the page it leads to shows the projection catch up.
	tb.clickTo("resume", "#resume-balances", ".notice")
	tb.waitFor("the projection live again past the new event", fmt.Sprintf(`document.querySelector('tr[data-projection="balances"][data-state="LIVE"] td[data-position="%d"]') !== null`, res.LastPosition))
	e.balances.mu.Lock()
	after := e.balances.applied[2]
	e.balances.mu.Unlock()
	if after <= before {
		t.Errorf("resumed, the projection applied %d events, no more than the %d before the pause", after, before)
	}
	want := []string{"action=projection.rebuild target=balances", "action=projection.pause target=balances", "action=projection.resume target=balances"}
	checkActions(t, e, want)
}

// checkActions checks that the actions were logged in order, each with
// who asked for them.
func checkActions(t *testing.T, e *env, want []string) {
	t.Helper()
	got := e.log.actions()
	if len(got) != len(want) {
		t.Fatalf("logged actions %q, want %d: %q", got, len(want), want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]+" by=") || !strings.Contains(got[i], "127.0.0.1") {
			t.Errorf("action %d logged as %q, want %q by the remote address", i, got[i], want[i])
		}
	}
}

func TestDeadLetterReplayAndDiscard(t *testing.T) {
	e := start(t, dashboard.Options{}, nil)
	poison := e.append(t, "acc-1", "", Opened{Owner: "ada"}, Deposited{Amount: 13, Note: "poison"})
	other := e.append(t, "acc-2", "", Deposited{Amount: 14, Note: "poison"})
	waitUntil(t, "two dead letters", func() bool { n, _ := e.n.DLQ().Size(t.Context(), "mailer"); return n == 2 })
	tb := newTab(t)
	entry := fmt.Sprintf("mailer/%d", poison.LastPosition)
	tb.do("open the dead letters", chromedp.Navigate(e.url("/dlq")), chromedp.WaitVisible(chromedp.CSS(`tr[data-entry="`+entry+`"]`)))
	if row := tb.text(`tr[data-entry="` + entry + `"]`); !strings.Contains(row, "cannot mail a poisoned deposit of 13") || !strings.Contains(row, "test.deposited") {
		t.Errorf("the entry shows %q: want its error and event type", row)
	}
	tb.screen("dead-letters")

	tb.clickTo("open the entry", `tr[data-entry="`+entry+`"] a`, "#payload")
	if p := tb.text("#payload"); !strings.Contains(p, `"amount": 13`) || !strings.Contains(p, `"note": "poison"`) {
		t.Errorf("payload %q", p)
	}
	tb.screen("dead-letter")

	e.mailer.mu.Lock()
	e.mailer.fixed = true
	e.mailer.mu.Unlock()
	tb.clickTo("ask for a replay", "#replay", "#confirm")
	e.mailer.mu.Lock()
	early := e.mailer.handled[poison.LastPosition]
	e.mailer.mu.Unlock()
	if early {
		t.Fatal("the event was replayed before the confirmation")
	}
	tb.clickTo("confirm the replay", "#confirm", ".notice")
	waitUntil(t, "the handler receives the replayed event", func() bool {
		e.mailer.mu.Lock()
		defer e.mailer.mu.Unlock()
		return e.mailer.handled[poison.LastPosition]
	})
	tb.waitFor("the replayed entry gone from the list", `document.querySelector('tr[data-entry="`+entry+`"]') === null && document.querySelector('tr[data-entry]') !== null`)

	second := fmt.Sprintf("mailer/%d", other.LastPosition)
	tb.do("open the other", chromedp.Navigate(e.url("/dlq/"+second)), chromedp.WaitVisible(chromedp.ID("discard")))
	tb.clickTo("ask for a discard", "#discard", "#confirm")
	tb.clickTo("confirm the discard", "#confirm", "#none")
	if n, err := e.n.DLQ().Size(t.Context(), ""); err != nil || n != 0 {
		t.Errorf("DLQ size %d (%v) after replay and discard, want 0", n, err)
	}
	e.mailer.mu.Lock()
	if e.mailer.handled[other.LastPosition] {
		t.Error("the discarded event reached the handler")
	}
	e.mailer.mu.Unlock()
	checkActions(t, e, []string{"action=dlq.replay target=" + entry, "action=dlq.discard target=" + second})
}

func TestSagasWithoutSagas(t *testing.T) {
	e := start(t, dashboard.Options{}, nil)
	tb := newTab(t)
	tb.do("open the sagas", chromedp.Navigate(e.url("/sagas")), chromedp.WaitVisible(chromedp.CSS("#sagas-live p")))
	if got := tb.text("#sagas-live p"); got != "This node runs no sagas." {
		t.Errorf("sagas page says %q", got)
	}
	tb.screen("sagas")
}

// get fetches a dashboard path without a browser.
func get(t *testing.T, e *env, method, path string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.url(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestUnauthorisedAccessIsRefused(t *testing.T) {
	e := start(t, dashboard.Options{Token: "s3cret-token", Public: true}, func(e *env) { e.append(t, "acc-1", "", Opened{Owner: "ada"}) })
	for _, c := range []struct {
		name, method, path string
		header             []string
		want               int
	}{
		{"no token", "GET", "/", nil, http.StatusUnauthorized},
		{"wrong token", "GET", "/", []string{"Authorization", "Bearer nope"}, http.StatusUnauthorized},
		{"malformed header", "GET", "/", []string{"Authorization", "s3cret-token"}, http.StatusUnauthorized},
		{"live stream without token", "GET", "/live?view=overview", nil, http.StatusUnauthorized},
		{"history without token", "GET", "/aggregates/account/acc-1", nil, http.StatusUnauthorized},
		{"action without token", "POST", "/dlq/mailer/1/discard", nil, http.StatusUnauthorized},
		{"bearer token", "GET", "/", []string{"Authorization", "Bearer s3cret-token"}, http.StatusOK},
		{"cross-origin action", "POST", "/projections/balances/pause", []string{"Authorization", "Bearer s3cret-token", "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
	} {
		status, body := get(t, e, c.method, c.path, c.header...)
		if status != c.want {
			t.Errorf("%s: %s %s answered %d, want %d: %.300s", c.name, c.method, c.path, status, c.want, body)
		}
		if c.want == http.StatusUnauthorized && (strings.Contains(body, "history-rows") || strings.Contains(body, `data-stream="EVENTS"`)) {
			t.Errorf("%s: the refusal shows data: %.300s", c.name, body)
		}
	}
	if st, _ := e.n.Projections().Status(t.Context(), "balances"); st.State == "STOPPED" {
		t.Error("a cross-origin POST paused the projection")
	}

	tb := newTab(t)
	tb.do("open without a token", chromedp.Navigate(e.url("/aggregates/account/acc-1")), chromedp.WaitVisible(chromedp.ID("token")))
	if got := tb.text("[role=alert]"); !strings.Contains(got, "no token") {
		t.Errorf("the refusal says %q: want it to say the token is missing", got)
	}
	if eval[int](tb, `document.querySelectorAll("#history-rows").length`) != 0 {
		t.Error("the history shows without a token")
	}
	tb.do("type a wrong token", chromedp.SendKeys(chromedp.ID("token"), "wrong"))
	tb.submitTo("sign in with a wrong token", "#token", "[role=alert]")
	if got := tb.text("[role=alert]"); !strings.Contains(got, "the token is wrong") {
		t.Errorf("a wrong token is refused with %q: want it to say the token is wrong", got)
	}
	tb.mu.Lock()
	tb.console = nil // the refusals' 401s are logged by the browser, as they should be
	tb.mu.Unlock()
	tb.do("type the token", chromedp.SetValue(chromedp.ID("token"), "s3cret-token"))
	tb.submitTo("sign in", "#token", "#history-rows tr")
	if loc, _ := chromedp.Run(tb.ctx, chromedp.Location()); !strings.HasSuffix(loc, "/ui/aggregates/account/acc-1") {
		t.Errorf("after the sign-in the browser is at %s, not the page it asked for", loc)
	}
	tb.screen("signed-in-history")
}

func TestOpenPagesCostNoConsumer(t *testing.T) {
	e := start(t, dashboard.Options{}, nil)
	seedAccounts(t, e)
	consumers := func() int {
		s, err := e.n.JetStream().Stream(t.Context(), e.n.Store().StreamName())
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for range s.ListConsumers(t.Context()).Info() {
			n++
		}
		return n
	}
	// Stopped, the projection makes no new consumer of its own (its
	// catch-up and follow each use one) while the tabs are measured.
	if err := e.n.Projections().Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := consumers()
	tabs := []*tab{newTab(t), newTab(t), newTab(t)}
	for i, path := range []string{"/", "/aggregates/account/acc-1", "/projections"} {
		tabs[i].do("open "+path, chromedp.Navigate(e.url(path)), chromedp.WaitReady(chromedp.CSS(`body[data-live-open="yes"]`)))
	}
	res := e.append(t, "acc-1", "", Deposited{Amount: 3})
	tabs[1].waitFor("the live append", fmt.Sprintf(`document.querySelector('#history-rows tr[data-position="%d"]') !== null`, res.LastPosition))
	if during := consumers(); during != before {
		t.Errorf("%d consumers on the event stream with three live tabs open, %d without: want no more", during, before)
	}
}

// TestConsumersAndBridges: the consumers page lists the durable handler's
// consumer on the event stream with its positions, updated live after an
// append, and says the node runs no bridges.
func TestConsumersAndBridges(t *testing.T) {
	e := start(t, dashboard.Options{}, nil)
	first := e.append(t, "acc-1", "", Opened{Owner: "ada"})
	waitUntil(t, "the mailer to handle the first event", func() bool {
		e.mailer.mu.Lock()
		defer e.mailer.mu.Unlock()
		return e.mailer.handled[first.LastPosition]
	})
	tb := newTab(t)
	row := `tr[data-stream="EVENTS"][data-consumer*="mailer"]`
	tb.do("open the consumers", chromedp.Navigate(e.url("/consumers")), chromedp.WaitVisible(chromedp.CSS(row)))
	if got := tb.text("#no-bridges"); !strings.Contains(got, "no bridges") {
		t.Errorf("the bridges section says %q, want that the node runs none", got)
	}
	tb.waitFor("the mailer's consumer delivered up to the first event", `document.querySelector('`+row+` td[data-delivered="`+strconv.FormatUint(first.LastPosition, 10)+`"]') !== null`)
	tb.do("wait for the live stream", chromedp.WaitReady(chromedp.CSS(`body[data-live-open="yes"]`)))
	tb.screen("consumers")
	eval[bool](tb, `window.notReloaded = true`)
	next := e.append(t, "acc-1", "", Deposited{Amount: 3})
	tb.waitFor("the live update of the consumer's position", `document.querySelector('`+row+` td[data-delivered="`+strconv.FormatUint(next.LastPosition, 10)+`"]') !== null`)
	if !eval[bool](tb, `window.notReloaded === true`) {
		t.Error("the page reloaded to show the new position")
	}
	if errs := tb.errors(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}
