package dashboard_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/memory" // registers the broker "memory"
	"github.com/lexigram/events/config"
	"github.com/lexigram/events/node/dashboard"
)

// rateOf is the data-rate of the element sel: "" while unknown.
func rateOf(tb *tab, sel string) string {
	tb.t.Helper()
	return eval[string](tb, fmt.Sprintf(`(() => { const el = document.querySelector(%s); return el === null ? "missing" : el.dataset.rate })()`, jsString(sel)))
}

// TestOverviewRatesFollowAppends: the overview shows "—" for its rates
// until the live updates have two readings, then the append and consume
// rates, which rise while events are appended (and the durable handler
// acknowledges them) and fall back to zero when the appends stop.
func TestOverviewRatesFollowAppends(t *testing.T) {
	e := start(t, dashboard.Options{}, nil)
	seedAccounts(t, e)
	status, body := get(t, e, "GET", "/")
	if status != 200 || !strings.Contains(body, `id="append-rate" data-rate="">—`) || !strings.Contains(body, `id="consume-rate" data-rate="">—`) {
		t.Fatalf("the overview's first render (%d) does not show — for the rates before a second reading:\n%.2000s", status, body)
	}
	tb := newTab(t)
	tb.do("open the overview", chromedp.Navigate(e.url("/")), chromedp.WaitReady(chromedp.CSS(`body[data-live-open="yes"]`)))
	tb.waitFor("the rates known and quiet", `document.querySelector('#append-rate[data-rate="0.000"]') !== null && document.querySelector('#consume-rate[data-rate="0.000"]') !== null`)
	if got := tb.text("#append-rate"); !strings.HasPrefix(got, "0.0/s") {
		t.Errorf("a quiet store's append rate shows %q, want 0.0/s", got)
	}

	// Append until the page shows both rates above zero.
	deadline := time.Now().Add(30 * time.Second)
	var appendRate, consumeRate float64
	for i := 0; ; i++ {
		e.append(t, fmt.Sprintf("acc-rate-%d", i%5), "", Deposited{Amount: i})
		appendRate, _ = strconv.ParseFloat(rateOf(tb, "#append-rate"), 64)
		consumeRate, _ = strconv.ParseFloat(rateOf(tb, "#consume-rate"), 64)
		if appendRate > 0 && consumeRate > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d appends in 30s the overview shows append rate %v and consume rate %v: want both above 0", i+1, appendRate, consumeRate)
		}
		time.Sleep(10 * time.Millisecond) // pace the appends
	}
	if got := tb.text("#append-rate"); !strings.HasSuffix(strings.Fields(got)[0], "/s") || strings.HasPrefix(got, "0.0/s") {
		t.Errorf("the append rate shows %q while events are appended", got)
	}
	if got := tb.text("#consume-rate"); !strings.Contains(got, "durable consumers") {
		t.Errorf("the consume rate shows %q: want it to say what it sums", got)
	}
	tb.screen("overview-rates")
	// Stopped, the rates fall back to zero.
	tb.waitFor("the append rate back to zero", `document.querySelector('#append-rate[data-rate="0.000"]') !== null`)
	tb.waitFor("the consume rate back to zero", `document.querySelector('#consume-rate[data-rate="0.000"]') !== null`)
}

// TestBridgeRatesAndErrorsShow: the consumers page shows each bridge's
// rate, moved messages, errors and last error, live: an outbound
// bridge moving appended events, an inbound one moving broker messages,
// and the outbound one failing during a broker outage.
func TestBridgeRatesAndErrorsShow(t *testing.T) {
	topicOut, topicIn := "dashboard-out-"+strconv.FormatInt(time.Now().UnixNano(), 36), "dashboard-in-"+strconv.FormatInt(time.Now().UnixNano(), 36)
	e := startWith(t, dashboard.Options{}, func(c *config.Config) {
		bridge := func(name, direction, topic string) config.Bridge {
			b := config.DefaultBridge()
			b.Name, b.Direction, b.Broker, b.Settings = name, direction, "memory", map[string]string{"topic": topic}
			b.Backoff = config.BridgeBackoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}
			b.StopTimeout = 5 * time.Second
			return b
		}
		in := bridge("from-memory", "inbound", topicIn)
		in.Stream, in.Subject = "DASHBOARD_BRIDGED", "dashboard.bridged"
		c.Bridges = []config.Bridge{bridge("to-memory", "outbound", topicOut), in}
	}, nil)
	t.Cleanup(memory.Default.Start) // whatever happens below, the shared broker is up for the next test

	status, body := get(t, e, "GET", "/consumers")
	if status != 200 || !strings.Contains(body, `data-bridge="to-memory"`) || !strings.Contains(body, `data-rate="">—`) {
		t.Fatalf("the consumers page's first render (%d) does not list the bridges with — for their rates:\n%.3000s", status, body)
	}
	tb := newTab(t)
	out, in := `tr[data-bridge="to-memory"]`, `tr[data-bridge="from-memory"]`
	tb.do("open the consumers", chromedp.Navigate(e.url("/consumers")), chromedp.WaitReady(chromedp.CSS(`body[data-live-open="yes"]`)))
	tb.waitFor("the bridges' rates known", `document.querySelector('`+out+` td[data-rate="0.000"]') !== null && document.querySelector('`+in+` td[data-rate="0.000"]') !== null`)

	pub := memory.Default.Publisher(topicIn)
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		e.append(t, "acc-bridged", "", Deposited{Amount: i})
		if err := pub.Publish(t.Context(), &bridges.Message{ID: fmt.Sprintf("in-%d", i), Subject: "orders", Data: []byte(`{"n":` + strconv.Itoa(i) + `}`)}); err != nil {
			t.Fatal(err)
		}
		outRate, _ := strconv.ParseFloat(rateOf(tb, out+" td[data-rate]"), 64)
		inRate, _ := strconv.ParseFloat(rateOf(tb, in+" td[data-rate]"), 64)
		if outRate > 0 && inRate > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d messages each way in 30s the bridges show rates out %v, in %v: want both above 0", i+1, outRate, inRate)
		}
		time.Sleep(10 * time.Millisecond) // pace the messages
	}
	moved := eval[int](tb, `+document.querySelector('`+out+` td[data-moved]').dataset.moved`)
	if moved == 0 || memory.Default.Len(topicOut) == 0 {
		t.Errorf("the outbound bridge shows %d moved, the broker holds %d: want both above 0", moved, memory.Default.Len(topicOut))
	}
	if got := tb.text(out + " td[data-errors]"); got != "0" {
		t.Errorf("the outbound bridge shows %s errors before any outage", got)
	}
	tb.screen("bridges-rates")

	memory.Default.Stop()
	e.append(t, "acc-bridged", "", Deposited{Amount: -1})
	tb.waitFor("the outage's errors", `(() => { const r = document.querySelector('`+out+`'); return r !== null && +r.querySelector('td[data-errors]').dataset.errors > 0 && r.querySelector('[data-last-error]') !== null && r.innerText.includes("not connected") })()`)
	if got := tb.text(out + " [data-last-error]"); !strings.Contains(got, memory.ErrDown.Error()) {
		t.Errorf("the last error shows %q, want the broker's %q", got, memory.ErrDown)
	}
	tb.screen("bridges-errors")
	memory.Default.Start()
	want := strconv.Itoa(moved)
	tb.waitFor("the bridge moving again after the outage", `(() => { const r = document.querySelector('`+out+`'); return r !== null && +r.querySelector('td[data-moved]').dataset.moved > `+want+` && r.innerText.includes("connected") && !r.innerText.includes("not connected") })()`)
}
