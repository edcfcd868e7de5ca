package dashboard_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lexigram/events/examples/orders"
	"github.com/lexigram/events/node/dashboard"
)

// TestExampleDomainScreens: against a node with the example domain
// (examples/orders, what lexigram serve runs) and seeded orders, each
// screen shows the domain's own data: the event stream on the overview,
// an order's history with its decoded events, the summary projection
// live, the fulfilment saga's instances, the audit handler's consumer;
// and an order's history gains a row without a reload when the order
// changes.
func TestExampleDomainScreens(t *testing.T) {
	e := start(t, dashboard.Options{}, func(e *env) {
		if err := orders.Install(t.Context(), e.n, orders.Options{}); err != nil {
			t.Fatal(err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dispatch := func(cmd any) {
		t.Helper()
		if _, err := e.n.Commands().Dispatch(ctx, cmd); err != nil {
			t.Fatalf("%T: %v", cmd, err)
		}
	}
	dispatch(orders.PlaceOrder{ID: "o-1", Customer: "ada"})
	dispatch(orders.AddItem{ID: "o-1", SKU: "tea", Quantity: 2, PriceCents: 450})
	dispatch(orders.ConfirmOrder{ID: "o-1"})
	dispatch(orders.PlaceOrder{ID: "o-2", Customer: "grace"})

	tb := newTab(t)
	tb.do("open the overview", chromedp.Navigate(e.url("/")), chromedp.WaitVisible(`#streams tr[data-stream="EVENTS"]`))
	tb.screen("example-overview")

	tb.do("open order o-1", chromedp.Navigate(e.url("/aggregates/order/o-1")), chromedp.WaitVisible(`tr[data-position]`))
	history := tb.text("main")
	for _, want := range []string{"order.placed", "order.item-added", "order.confirmed", `"sku": "tea"`, `"customer": "ada"`} {
		if !strings.Contains(history, want) {
			t.Errorf("order o-1's history lacks %q:\n%.2000s", want, history)
		}
	}
	tb.screen("example-order-history")

	tb.do("open order o-2", chromedp.Navigate(e.url("/aggregates/order/o-2")), chromedp.WaitReady(`body[data-live-open="yes"]`))
	tb.waitFor("o-2's one event", `document.querySelectorAll("tr[data-position]").length === 1`)
	dispatch(orders.AddItem{ID: "o-2", SKU: "cake", Quantity: 1, PriceCents: 300})
	tb.waitFor("o-2's new event without a reload", `document.querySelectorAll("tr[data-position]").length === 2 && document.body.innerText.includes("cake")`)

	tb.do("open the projections", chromedp.Navigate(e.url("/projections")), chromedp.WaitVisible(`tr[data-projection="`+orders.SummaryProjection+`"]`))
	tb.waitFor("the summary projection live", `document.querySelector('tr[data-projection="`+orders.SummaryProjection+`"][data-state="LIVE"]') !== null`)
	tb.screen("example-projections")

	tb.do("open the sagas", chromedp.Navigate(e.url("/sagas")), chromedp.WaitReady(`body[data-live-open="yes"]`))
	tb.waitFor("the fulfilment saga's instance counted", `document.querySelector('tr[data-type="`+orders.FulfillmentSaga+`"]') !== null`)
	tb.screen("example-sagas")

	tb.do("open the consumers", chromedp.Navigate(e.url("/consumers")), chromedp.WaitVisible(`tr[data-consumer="`+orders.AuditHandler+`"]`))
	tb.screen("example-consumers")
}
