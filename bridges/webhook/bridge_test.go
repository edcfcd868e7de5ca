package webhook_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/webhook"
	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

type orderPlaced struct{ Customer string }
type orderPaid struct{ Amount int }
type invoiceSent struct{ To string }

// An outbound bridge reads the store and fans each event out to the
// endpoints whose filters take it, in each of the bridge's formats; an
// endpoint that refuses an event has it dead-lettered with code LXE-018
// naming that endpoint, while the others keep theirs; and the bridge acks
// every event once all endpoints settled it.
func TestBridgeFanOutFiltersAndDeadLetters(t *testing.T) {
	s := embeddedtest.Server(t, func(o *embedded.Options) { o.FsyncInterval = time.Minute })
	js, err := jetstream.New(embeddedtest.Conn(t, s))
	if err != nil {
		t.Fatal(err)
	}
	reg := platform.NewRegistry()
	platform.MustRegister[orderPlaced](reg, "order.placed", 1)
	platform.MustRegister[orderPaid](reg, "order.paid", 1)
	platform.MustRegister[invoiceSent](reg, "invoice.sent", 1)
	st, err := lxjs.New(t.Context(), js, lxjs.Options{Registry: reg, Codec: platform.JSON, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	order, invoice := platform.StreamID{Type: "order", ID: "o-1"}, platform.StreamID{Type: "invoice", ID: "i-1"}
	if _, err := st.Append(t.Context(), order, platform.NoStream(), []platform.Envelope{{Event: orderPlaced{Customer: "ada"}}, {Event: orderPaid{Amount: 7}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(t.Context(), invoice, platform.NoStream(), []platform.Envelope{{Event: invoiceSent{To: "ada"}}}); err != nil {
		t.Fatal(err)
	}

	formats := []struct {
		format      bridges.Format
		contentType string
		typeOf      func(r request) string
	}{
		{bridges.PassThrough, "application/json", func(r request) string { return r.Header.Get("Lx-Type") }},
		{bridges.CloudEventsBinary, "application/json", func(r request) string { return r.Header.Get("ce-type") }},
		{bridges.CloudEventsStructured, "application/cloudevents+json", func(r request) string {
			var ce struct{ Type, Specversion string }
			if json.Unmarshal(r.Body, &ce) != nil || ce.Specversion != "1.0" {
				return "not a CloudEvent: " + string(r.Body)
			}
			return ce.Type
		}},
	}
	for _, f := range formats {
		t.Run(f.format.String(), func(t *testing.T) {
			all, placed, invoices := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
			refusing := newReceiver(t, status(http.StatusUnprocessableEntity))
			eps := []webhook.Endpoint{endpoint(t, "all", all), endpoint(t, "placed", placed), endpoint(t, "invoices", invoices), endpoint(t, "refusing", refusing)}
			eps[1].EventTypes = []string{"order.placed"}
			eps[2].AggregateTypes = []string{"invoice"}
			eps[3].EventTypes = []string{"order.paid"}
			pub := newPublisher(t, webhook.Options{Endpoints: eps, AllowPrivate: true})
			name := "hooks-" + strings.ReplaceAll(f.format.String(), "-", "")
			out, err := bridges.NewOutbound(t.Context(), js, pub, bridges.OutboundOptions{
				Name: name, Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix(), Format: f.format, Workers: 2, Logger: embeddedtest.Logger(t),
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				if err := out.Stop(ctx); err != nil {
					t.Errorf("stop: %v", err)
				}
			})
			waitUntil(t, "the bridge to ack all 3 events", 30*time.Second, func() bool {
				c, err := js.Consumer(context.Background(), st.StreamName(), name)
				if err != nil {
					return false
				}
				info, err := c.Info(context.Background())
				return err == nil && info.AckFloor.Stream == 3 && info.NumAckPending == 0 && info.NumPending == 0
			})
			types := func(rc *receiver) []string {
				var out []string
				for _, r := range rc.requests() {
					if ct := r.Header.Get("Content-Type"); ct != f.contentType {
						t.Errorf("content type %q, want %q", ct, f.contentType)
					}
					if err := verify(eps[0].Secrets[0], r.Header, r.Body); err != nil && rc == all {
						t.Errorf("signature: %v", err)
					}
					out = append(out, f.typeOf(r))
				}
				return out
			}
			if got := strings.Join(types(all), ","); got != "order.placed,order.paid,invoice.sent" && got != "invoice.sent,order.placed,order.paid" &&
				got != "order.placed,invoice.sent,order.paid" {
				t.Errorf("the unfiltered endpoint got %s: want every event, the order's in order", got)
			}
			if got := strings.Join(types(placed), ","); got != "order.placed" {
				t.Errorf("the order.placed endpoint got %q", got)
			}
			if got := strings.Join(types(invoices), ","); got != "invoice.sent" {
				t.Errorf("the invoice endpoint got %q", got)
			}
			if got := strings.Join(types(refusing), ","); got != "order.paid" {
				t.Errorf("the refusing endpoint got %q", got)
			}

			dlq, err := js.Stream(t.Context(), bridges.DefaultDeadLetterStream)
			if err != nil {
				t.Fatal(err)
			}
			m, err := dlq.GetLastMsgForSubject(t.Context(), "lxbridge.dlq."+name)
			if err != nil {
				t.Fatalf("the dead letter: %v", err)
			}
			reason := m.Header.Get(bridges.HeaderReason)
			for _, w := range []string{"LXE-018", "endpoint refusing", "422 Unprocessable Entity", "after 1 attempt"} {
				if !strings.Contains(reason, w) {
					t.Errorf("dead-letter reason %q lacks %q", reason, w)
				}
			}
			if m.Header.Get("Lx-Type") != "order.paid" || m.Header.Get(bridges.HeaderSubject) != "events.order.o-1" {
				t.Errorf("dead letter headers %v", m.Header)
			}
			info, err := dlq.Info(t.Context(), jetstream.WithSubjectFilter("lxbridge.dlq."+name))
			if err != nil || len(info.State.Subjects) != 1 || info.State.Subjects["lxbridge.dlq."+name] != 1 {
				t.Errorf("dead letters of %s: %v (%v), want exactly 1", name, info.State.Subjects, err)
			}
		})
	}
}
