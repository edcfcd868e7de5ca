package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadBridges(t *testing.T) {
	cleanEnv(t)
	c := mustLoad(t, writeYAML(t, `
bridges:
  - name: orders-to-rabbitmq
    direction: outbound
    broker: rabbitmq
    aggregate_types: [order]
    event_types: [order.placed, order.shipped]
    format: cloudevents-binary
    workers: 4
    batch_size: 50
    ack_wait: 45s
    max_ack_pending: 500
    backoff:
      min: 50ms
      max: 5s
    stop_timeout: 1m
    settings:
      url: amqp://guest:guest@127.0.0.1:5672/
      exchange: orders
      declare: true
      prefetch: 10
      ratio: 0.5
      empty:
      billing:
        url: https://billing.example/hook
        event_types: [order.placed, order.paid]
  - name: payments-from-kafka
    direction: inbound
    broker: kafka
    stream: INBOUND
    subject: inbound.payments
    backoff: {}
    settings:
      brokers: a:9092,b:9092
      topic: payments
`))
	want := []Bridge{DefaultBridge(), DefaultBridge()}
	o := &want[0]
	o.Name, o.Direction, o.Broker = "orders-to-rabbitmq", BridgeOutbound, "rabbitmq"
	o.AggregateTypes, o.EventTypes = []string{"order"}, []string{"order.placed", "order.shipped"}
	o.Format, o.Workers, o.BatchSize, o.AckWait, o.MaxAckPending = "cloudevents-binary", 4, 50, 45*time.Second, 500
	o.Backoff = BridgeBackoff{Min: 50 * time.Millisecond, Max: 5 * time.Second}
	o.StopTimeout = time.Minute
	o.Settings = map[string]string{"url": "amqp://guest:guest@127.0.0.1:5672/", "exchange": "orders", "declare": "true", "prefetch": "10", "ratio": "0.5", "empty": "",
		"billing.url": "https://billing.example/hook", "billing.event_types": "order.placed,order.paid"}
	in := &want[1]
	in.Name, in.Direction, in.Broker, in.Stream, in.Subject = "payments-from-kafka", BridgeInbound, "kafka", "INBOUND", "inbound.payments"
	in.Settings = map[string]string{"brokers": "a:9092,b:9092", "topic": "payments"}
	if !reflect.DeepEqual(c.Bridges, want) {
		t.Errorf("Bridges =\n%v\nwant\n%v", c.Bridges, want)
	}
	d := DefaultBridge()
	if d.Format != "passthrough" || d.ConnectTimeout != 10*time.Second || d.StopTimeout != 30*time.Second {
		t.Errorf("DefaultBridge() = %v", d)
	}
}

func TestLoadWithoutBridges(t *testing.T) {
	cleanEnv(t)
	for _, text := range []string{"bridges:\n", "bridges: []\n", "store:\n  stream: EVENTS\n"} {
		if c := mustLoad(t, writeYAML(t, text)); len(c.Bridges) != 0 {
			t.Errorf("%q: Bridges = %v, want none", text, c.Bridges)
		}
	}
}

// TestBridgeFileErrors: every problem in a bridge's YAML names the file,
// the bridge and the key; an unknown key is an error.
func TestBridgeFileErrors(t *testing.T) {
	const head = "bridges:\n  - name: b1\n    direction: outbound\n    broker: rabbitmq\n"
	tests := []struct {
		name, yaml, field, problem string
	}{
		{"a map, not a list", "bridges:\n  name: b1\n", "bridges", "is not a list"},
		{"a scalar, not a list", "bridges: b1\n", "bridges", "is not a list"},
		{"an item that is no map", "bridges:\n  - b1\n", "bridges[0]", "is not a bridge"},
		{"an unknown key", head + "    exchange: orders\n", "bridges[0](b1).exchange", "is not a bridge setting: use ack_wait, "},
		{"an unknown nested key", head + "    backoff:\n      initial: 1s\n", "bridges[0](b1).backoff.initial", "is not a bridge setting"},
		{"a section as a value", head + "    backoff: 1s\n", "bridges[0](b1).backoff", "is a section"},
		{"a bad duration", head + "    ack_wait: soon\n", "bridges[0](b1).ack_wait", "is not a duration"},
		{"a duration without unit", head + "    stop_timeout: 30\n", "bridges[0](b1).stop_timeout", "has no unit"},
		{"a bad integer", head + "    workers: many\n", "bridges[0](b1).workers", "is not an integer"},
		{"a bad bool", head + "    from_now: yes\n", "bridges[0](b1).from_now", "is not true or false"},
		{"a number for a name", "bridges:\n  - name: 7\n", "bridges[0].name", "is not a string"},
		{"a bad list", head + "    aggregate_types: [1, 2]\n", "bridges[0](b1).aggregate_types", "is not a list of strings"},
		{"settings not a map", head + "    settings: [a, b]\n", "bridges[0](b1).settings", "is not a map"},
		{"a map in a list setting", head + "    settings:\n      tls: [{ca: x}]\n", "bridges[0](b1).settings.tls", "is not a string, number, boolean or list of them"},
		{"a comma in a list setting", head + "    settings:\n      hosts: [\"a,b\", c]\n", "bridges[0](b1).settings.hosts", "is not a string"},
		{"a setting twice", head + "    settings:\n      billing.url: x\n      billing:\n        url: y\n", "bridges[0](b1).settings.billing.url", "is given twice"},
		{"the second bridge", head + "  - name: b2\n    direction: inbound\n    topic: t\n", "bridges[1](b2).topic", "is not a bridge setting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			path := writeYAML(t, tt.yaml)
			_, err := Load(path)
			fes := fieldErrors(err)
			if len(fes) == 0 {
				t.Fatalf("Load error = %v, want a *FieldError", err)
			}
			fe := fes[0]
			if fe.Field != tt.field || !strings.HasPrefix(fe.Problem, tt.problem) {
				t.Errorf("FieldError = %+v, want field %q and problem %q...", *fe, tt.field, tt.problem)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestBridgesHaveNoEnvironmentVariables(t *testing.T) {
	cleanEnv(t)
	t.Setenv("LEXIGRAM_BRIDGES", "x")
	_, err := Load("")
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "LEXIGRAM_BRIDGES" || !strings.Contains(fe.Problem, "YAML file's bridges section") {
		t.Fatalf("Load = %v, want a FieldError saying bridges are set in the file", err)
	}
	for _, s := range settings {
		if strings.HasPrefix(s.key, "bridges") {
			t.Errorf("settings table has %s: the bridges list must not be a setting", s.key)
		}
	}
}

func validBridges() []Bridge {
	out, in := DefaultBridge(), DefaultBridge()
	out.Name, out.Direction, out.Broker = "out", BridgeOutbound, "rabbitmq"
	in.Name, in.Direction, in.Broker, in.Subject = "in", BridgeInbound, "kafka", "inbound.payments"
	return []Bridge{out, in}
}

func TestValidateBridges(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(out, in *Bridge)
		field  string
		want   string // the whole message if it starts with the field, else a part of it
	}{
		{"name empty", func(o, _ *Bridge) { o.Name = "" }, "bridges[0].name", "is empty: name the bridge"},
		{"name bad", func(o, _ *Bridge) { o.Name = "orders.out" }, "bridges[0](orders.out).name",
			`bridges[0](orders.out).name: "orders.out" is not a bridge name: use 1 to 64 letters, digits, '-' and '_'`},
		{"name long", func(o, _ *Bridge) { o.Name = strings.Repeat("a", 65) }, "bridges[0](" + strings.Repeat("a", 65) + ").name", "1 to 64"},
		{"name twice", func(_, i *Bridge) { i.Name = "out" }, "bridges[1](out).name",
			`bridges[1](out).name: "out" is also the name of bridges[0]: give each bridge its own name`},
		{"direction empty", func(o, _ *Bridge) { o.Direction = "" }, "bridges[0](out).direction", `is empty: use "outbound"`},
		{"direction bad", func(o, _ *Bridge) { o.Direction = "both" }, "bridges[0](out).direction",
			`bridges[0](out).direction: "both" is not a direction: use "outbound" (JetStream to the broker) or "inbound" (the broker to JetStream)`},
		{"broker empty", func(o, _ *Bridge) { o.Broker = "" }, "bridges[0](out).broker", `is empty: name the broker, e.g. "rabbitmq"`},
		{"format", func(o, _ *Bridge) { o.Format = "avro" }, "bridges[0](out).format", `"avro" is not a format: use "passthrough"`},
		{"workers", func(o, _ *Bridge) { o.Workers = -1 }, "bridges[0](out).workers", "-1 is negative: use 0 for the default 1"},
		{"batch size", func(_, i *Bridge) { i.BatchSize = -5 }, "bridges[1](in).batch_size", "-5 is negative"},
		{"ack wait short", func(o, _ *Bridge) { o.AckWait = 500 * time.Millisecond }, "bridges[0](out).ack_wait", `"500ms" is under 1s`},
		{"publish timeout", func(o, _ *Bridge) { o.PublishTimeout = -time.Second }, "bridges[0](out).publish_timeout", "is negative"},
		{"backoff order", func(o, _ *Bridge) { o.Backoff = BridgeBackoff{Min: 2 * time.Second, Max: time.Second} }, "bridges[0](out).backoff.min",
			`"2s" is longer than backoff.max "1s"`},
		{"connect timeout", func(o, _ *Bridge) { o.ConnectTimeout = 0 }, "bridges[0](out).connect_timeout", "is not positive"},
		{"stop timeout", func(_, i *Bridge) { i.StopTimeout = -time.Second }, "bridges[1](in).stop_timeout", "is not positive"},
		{"dead letter subject", func(o, _ *Bridge) { o.DeadLetterSubject = "dlq.>" }, "bridges[0](out).dead_letter_subject", "is not a subject to publish to"},
		{"stream name", func(o, _ *Bridge) { o.Stream = "MY STREAM" }, "bridges[0](out).stream", "is not a valid stream name"},
		{"outbound with subject", func(o, _ *Bridge) { o.Subject = "x.y" }, "bridges[0](out).subject", "is for inbound bridges"},
		{"outbound bad filter", func(o, _ *Bridge) { o.Subjects = []string{"a.*", "a..b"} }, "bridges[0](out).subjects[1]", "is not a subject filter"},
		{"outbound filter gt inside", func(o, _ *Bridge) { o.Subjects = []string{"a.>.b"} }, "bridges[0](out).subjects[0]", "is not a subject filter"},
		{"aggregate types on another stream", func(o, _ *Bridge) { o.Stream, o.AggregateTypes = "ORDERS", []string{"order"} },
			"bridges[0](out).aggregate_types", `needs the event store's stream, but stream is "ORDERS"`},
		{"event types on another stream", func(o, _ *Bridge) { o.Stream, o.EventTypes = "ORDERS", []string{"order.placed"} },
			"bridges[0](out).event_types", "needs the event store's stream"},
		{"aggregate type bad", func(o, _ *Bridge) { o.AggregateTypes = []string{"order", "or der"} }, "bridges[0](out).aggregate_types[1]", "is not an aggregate type"},
		{"event type empty", func(o, _ *Bridge) { o.EventTypes = []string{" "} }, "bridges[0](out).event_types[0]", "is empty"},
		{"inbound without subject", func(_, i *Bridge) { i.Subject = "" }, "bridges[1](in).subject", `is empty: name the JetStream subject`},
		{"inbound wildcard subject", func(_, i *Bridge) { i.Subject = "inbound.*" }, "bridges[1](in).subject", "is not a subject to publish to"},
		{"inbound into the event store", func(_, i *Bridge) { i.Subject = "events.order.o-1" }, "bridges[1](in).subject", "is in the event store's subjects (events.>)"},
		{"inbound with aggregate types", func(_, i *Bridge) { i.AggregateTypes = []string{"order"} }, "bridges[1](in).aggregate_types",
			"bridges[1](in).aggregate_types: is for outbound bridges: remove it, or set direction: outbound"},
		{"inbound with ack wait", func(_, i *Bridge) { i.AckWait = time.Minute }, "bridges[1](in).ack_wait", "is for outbound bridges"},
		{"inbound with from now", func(_, i *Bridge) { i.FromNow = true }, "bridges[1](in).from_now", "is for outbound bridges"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Bridges = validBridges()
			tt.mutate(&c.Bridges[0], &c.Bridges[1])
			err := c.Validate()
			fes := fieldErrors(err)
			if len(fes) != 1 {
				t.Fatalf("Validate() reported %d problems, want 1: %v", len(fes), err)
			}
			fe := fes[0]
			if fe.Field != tt.field {
				t.Errorf("Field = %q, want %q (error %q)", fe.Field, tt.field, fe)
			}
			if strings.HasPrefix(tt.want, tt.field+":") {
				if fe.Error() != tt.want {
					t.Errorf("Error() = %q\nwant      %q", fe.Error(), tt.want)
				}
			} else if !strings.Contains(fe.Error(), tt.want) {
				t.Errorf("Error() = %q, want it to contain %q", fe.Error(), tt.want)
			}
		})
	}
}

func TestValidateBridgesAccepts(t *testing.T) {
	c := Default()
	c.Bridges = validBridges()
	o, i := &c.Bridges[0], &c.Bridges[1]
	o.AggregateTypes, o.EventTypes, o.Subjects = []string{"order"}, []string{"order.placed"}, []string{"events.order.*"}
	o.Format, o.AckWait, o.DeadLetterSubject = "CloudEvents-Structured", time.Second, "dlq.out"
	i.Stream, i.Subject = "INBOUND", "inbound.payments.eu"
	plain := DefaultBridge()
	plain.Name, plain.Direction, plain.Broker, plain.Stream, plain.Subjects = "plain", BridgeOutbound, "kafka", "AUDIT", []string{"audit.>"}
	into := DefaultBridge()
	into.Name, into.Direction, into.Broker, into.Stream, into.Subject = "into", BridgeInbound, "kafka", "OTHER", "events.x" // another stream's subjects
	c.Bridges = append(c.Bridges, plain, into)
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}

const bridgeSecret = "hunter2-bridge"

func secretBridgeConfig() Config {
	c := Default()
	b := DefaultBridge()
	b.Name, b.Direction, b.Broker = "out", BridgeOutbound, "rabbitmq"
	b.Settings = map[string]string{
		"url":               "amqp://guest:" + bridgeSecret + "@rabbit:5672/",
		"urls":              "amqp://a:" + bridgeSecret + "@r1:5672/,amqp://b:" + bridgeSecret + "@r2:5672/",
		"brokers":           "user:" + bridgeSecret + "@k1:9092",
		"sasl_password":     bridgeSecret,
		"api-key":           bridgeSecret,
		"secret":            bridgeSecret,
		"connection_string": "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=x;SharedAccessKey=" + bridgeSecret,
		"endpoint":          "Endpoint=sb://ns/;SharedAccessKey=" + bridgeSecret,
		"webhook":           "https://hooks.example/x?token=" + bridgeSecret,
		"billing.secrets":   "whsec_" + bridgeSecret,
		"routing_key":       "orders.created",
		"exchange":          "orders",
	}
	c.Bridges = []Bridge{b}
	return c
}

func TestBridgeSettingsAreRedacted(t *testing.T) {
	c := secretBridgeConfig()
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("config", "config", c, "bridge", c.Bridges[0])
	slog.New(slog.NewJSONHandler(&js, nil)).Info("config", "config", c)
	for what, s := range map[string]string{
		"String()": c.String(), "%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "%#v": fmt.Sprintf("%#v", c),
		"bridge %v": fmt.Sprintf("%v", c.Bridges[0]), "bridge %#v": fmt.Sprintf("%#v", c.Bridges[0]),
		"bridges %v": fmt.Sprintf("%v", c.Bridges), "slog text": text.String(), "slog json": js.String(),
		"RedactedSettings": fmt.Sprint(c.Bridges[0].RedactedSettings()),
	} {
		if strings.Contains(s, bridgeSecret) {
			t.Errorf("%s leaks a bridge secret: %s", what, s)
		}
	}
	s := c.String()
	for _, want := range []string{
		`bridges[0].name="out"`,
		`bridges[0].settings.url="amqp://[redacted]@rabbit:5672/"`,
		`bridges[0].settings.urls="amqp://[redacted]@r1:5672/,amqp://[redacted]@r2:5672/"`,
		`bridges[0].settings.brokers="[redacted]@k1:9092"`,
		`bridges[0].settings.sasl_password="[redacted]"`,
		`bridges[0].settings.routing_key="orders.created"`,
		`bridges[0].settings.exchange="orders"`,
		`bridges[0].settings.endpoint="[redacted]"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %s: %s", want, s)
		}
	}
	if !strings.Contains(text.String(), "config.bridges.0.settings.exchange=orders") {
		t.Errorf("slog text lacks the bridge's plain settings: %s", text.String())
	}
	if c.Bridges[0].Settings["sasl_password"] != bridgeSecret {
		t.Error("redacting changed the settings themselves")
	}
}

// A bad settings value is reported without the value: it may be a secret.
func TestBridgeSettingsErrorsHideValues(t *testing.T) {
	cleanEnv(t)
	_, err := Load(writeYAML(t, "bridges:\n  - name: b\n    settings:\n      password: [[\""+bridgeSecret+"\"]]\n"))
	if err == nil || !strings.Contains(err.Error(), "bridges[0](b).settings.password") {
		t.Fatalf("Load = %v, want an error naming bridges[0](b).settings.password", err)
	}
	if strings.Contains(err.Error(), bridgeSecret) {
		t.Errorf("the error shows the value: %v", err)
	}
}
