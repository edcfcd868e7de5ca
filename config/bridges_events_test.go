package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestLoadInboundEventsBridge(t *testing.T) {
	cleanEnv(t)
	c := mustLoad(t, writeYAML(t, `
bridges:
  - name: payments-in
    direction: inbound
    broker: rabbitmq
    land_as: events
    events:
      type_header: ce-type
      types:
        payments.received: payment.received
        PaymentRefunded: payment.refunded
      aggregate_type: payment
      aggregate_id_header: x-payment-id
      aggregate_id_field: paymentId
    settings:
      queue: payments
`))
	want := DefaultBridge()
	want.Name, want.Direction, want.Broker, want.LandAs = "payments-in", BridgeInbound, "rabbitmq", LandAsEvents
	want.Settings = map[string]string{"queue": "payments"}
	want.Events = BridgeEvents{
		TypeHeader: "ce-type", Types: map[string]string{"payments.received": "payment.received", "PaymentRefunded": "payment.refunded"},
		AggregateType: "payment", AggregateIDHeader: "x-payment-id", AggregateIDField: "paymentId",
	}
	if len(c.Bridges) != 1 || !reflect.DeepEqual(c.Bridges[0], want) {
		t.Fatalf("Bridges =\n%v\nwant\n%v", c.Bridges, want)
	}
	if !c.Bridges[0].LandsAsEvents() {
		t.Error("LandsAsEvents() = false")
	}
}

func TestInboundEventsBridgeFileErrors(t *testing.T) {
	const head = "bridges:\n  - name: b1\n    direction: inbound\n    broker: rabbitmq\n    land_as: events\n"
	for _, tt := range []struct{ name, yaml, field, problem string }{
		{"types not a map", head + "    events:\n      types: [a, b]\n", "bridges[0](b1).events.types", "is not a map"},
		{"a type not a string", head + "    events:\n      types:\n        a.b: 7\n", "bridges[0](b1).events.types.a.b", "is not an event type name"},
		{"an unknown events key", head + "    events:\n      type: x\n", "bridges[0](b1).events.type", "is not a bridge setting"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			_, err := Load(writeYAML(t, tt.yaml))
			fes := fieldErrors(err)
			if len(fes) == 0 {
				t.Fatalf("Load error = %v, want a *FieldError", err)
			}
			if fe := fes[0]; fe.Field != tt.field || !strings.HasPrefix(fe.Problem, tt.problem) {
				t.Errorf("FieldError = %+v, want field %q and problem %q...", *fe, tt.field, tt.problem)
			}
		})
	}
}

func TestValidateInboundEventsBridges(t *testing.T) {
	events := func(i *Bridge) { i.LandAs, i.Subject = LandAsEvents, "" }
	for _, tt := range []struct {
		name   string
		mutate func(out, in *Bridge)
		field  string
		want   string
	}{
		{"land_as bad", func(_, i *Bridge) { i.LandAs = "rows" }, "bridges[1](in).land_as",
			`bridges[1](in).land_as: "rows" is not what messages land as: use "messages" (plain messages on subject, the default) or "events" (events appended to the event store)`},
		{"land_as outbound", func(o, _ *Bridge) { o.LandAs = LandAsEvents }, "bridges[0](out).land_as", `"events" is for inbound bridges`},
		{"events outbound", func(o, _ *Bridge) { o.Events.AggregateType = "order" }, "bridges[0](out).events", "is for inbound bridges with land_as: events"},
		{"events without land_as", func(_, i *Bridge) { i.Events.AggregateType = "order" }, "bridges[1](in).events", "is for land_as: events: remove it, or set land_as: events"},
		{"events with a subject", func(_, i *Bridge) { events(i); i.Subject = "inbound.x" }, "bridges[1](in).subject",
			`bridges[1](in).subject: "inbound.x" is for land_as: messages: events land on the event store's subjects; remove it`},
		{"events with a stream", func(_, i *Bridge) { events(i); i.Stream = "INBOUND" }, "bridges[1](in).stream", `is not the event store's stream "EVENTS"`},
		{"events bad header", func(_, i *Bridge) { events(i); i.Events.AggregateIDHeader = "x id" }, "bridges[1](in).events.aggregate_id_header", `"x id" is not a header name`},
		{"events bad aggregate type", func(_, i *Bridge) { events(i); i.Events.AggregateType = "pay.ment" }, "bridges[1](in).events.aggregate_type", `"pay.ment" is not an aggregate type`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Bridges = validBridges()
			tt.mutate(&c.Bridges[0], &c.Bridges[1])
			fes := fieldErrors(c.Validate())
			if len(fes) != 1 {
				t.Fatalf("Validate() reported %d problems, want 1: %v", len(fes), fes)
			}
			fe := fes[0]
			if fe.Field != tt.field {
				t.Errorf("Field = %q, want %q (error %q)", fe.Field, tt.field, fe)
			}
			if strings.HasPrefix(tt.want, tt.field+":") && fe.Error() != tt.want || !strings.Contains(fe.Error(), tt.want) {
				t.Errorf("Error() = %q, want %q", fe.Error(), tt.want)
			}
		})
	}
	c := Default()
	c.Bridges = validBridges()
	events(&c.Bridges[1])
	c.Bridges[1].LandAs = "Events"
	c.Bridges[1].Events = BridgeEvents{TypeHeader: "ce-type", AggregateType: "payment", Types: map[string]string{"a.b": "payment.received"}}
	if err := c.Validate(); err != nil {
		t.Errorf("a valid events bridge: Validate() = %v", err)
	}
}
