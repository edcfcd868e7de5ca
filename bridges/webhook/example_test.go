package webhook_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/webhook"
)

// A publisher signs and POSTs each message to the endpoints whose filters
// take it. An outbound bridge calls Publish (bridges.NewOutbound with the
// publisher, or bridges.NewPublisher(ctx, "webhook", settings)); here it
// is called directly, against a receiver on loopback, so AllowPrivate.
func Example() {
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Println(r.Header.Get("webhook-id"), r.Header.Get("Content-Type"), string(body))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	secret, _ := webhook.NewSecret()
	pub, err := webhook.New(webhook.Options{
		Endpoints: []webhook.Endpoint{{
			Name: "billing", URL: receiver.URL + "/hooks", Secrets: []string{secret},
			EventTypes: []string{"order.placed"},
		}},
		AllowPrivate: true,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pub.Close()
	placed := &bridges.Message{ID: "evt-1", Key: "o-42", Subject: "events.order.o-42",
		Header: bridges.Header{"Lx-Type": "order.placed", "Content-Type": "application/json"}, Data: []byte(`{"customer":"ada"}`)}
	paid := &bridges.Message{ID: "evt-2", Key: "o-42", Subject: "events.order.o-42",
		Header: bridges.Header{"Lx-Type": "order.paid", "Content-Type": "application/json"}, Data: []byte(`{"amount":7}`)}
	fmt.Println(pub.Publish(context.Background(), placed, paid))
	// Output:
	// evt-1 application/json {"customer":"ada"}
	// <nil>
}
