package config

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/go-viper/mapstructure/v2"
)

// Directions of a bridge.
const (
	BridgeOutbound = "outbound" // from JetStream to the broker
	BridgeInbound  = "inbound"  // from the broker into JetStream
)

// What an inbound bridge's messages land as (Bridge.LandAs).
const (
	LandAsMessages = "messages" // plain messages on the bridge's subject
	LandAsEvents   = "events"   // events appended to the event store
)

// bridgesKey is the YAML key of the bridges section. It is a list, so it
// has no environment variable and is not in the settings table: Load
// reads it on its own (parseBridges).
const bridgesKey = "bridges"

// Bridge is one item of the bridges section: a bridge between JetStream
// and another broker, run by `lexigram bridge` or inside `lexigram serve`.
// Runner options left 0 take the runner's defaults (see
// bridges.OutboundOptions and bridges.InboundOptions).
type Bridge struct {
	// Name names the bridge: its durable consumer, metrics and dead-letter
	// subject. 1 to 64 letters, digits, '-' and '_'; unique.
	Name string `koanf:"name"`
	// Direction is "outbound" (JetStream to the broker) or "inbound".
	Direction string `koanf:"direction"`
	// Broker is the adapter's registered name: "rabbitmq", "kafka", ...
	Broker string `koanf:"broker"`
	// Settings go to the adapter as they are (url, exchange, topic, ...);
	// each adapter documents its keys and refuses others. Values may
	// hold credentials and are redacted when the configuration is shown.
	Settings map[string]string `koanf:"settings" redact:"settings"`

	// Stream, outbound, is the stream to read: empty (the default) reads
	// the event store's (store.stream), as events. Inbound, it is the
	// stream that stores the messages: created, capturing Subject, when
	// it does not exist; empty, some stream must capture Subject already.
	Stream string `koanf:"stream"`
	// Subjects, outbound, filter the stream (wildcards allowed).
	Subjects []string `koanf:"subjects"`
	// AggregateTypes and EventTypes, outbound, restrict a bridge that
	// reads the event store to these aggregates and event types.
	AggregateTypes []string `koanf:"aggregate_types"`
	EventTypes     []string `koanf:"event_types"`
	// FromNow, outbound, starts a new bridge at the next message instead
	// of the first stored.
	FromNow bool `koanf:"from_now"`
	// Subject, inbound and required unless land_as is "events", is where
	// messages land.
	Subject string `koanf:"subject"`
	// LandAs, inbound, is "messages" (the default: plain messages on
	// Subject) or "events": each message is appended to the event store
	// as an event, as Events says.
	LandAs string `koanf:"land_as"`
	// Events, inbound with land_as: events, say how a message becomes an
	// event of the store.
	Events BridgeEvents `koanf:"events"`

	// Format is "passthrough" (the default), "cloudevents-binary" or
	// "cloudevents-structured".
	Format string `koanf:"format"`
	// Source, outbound, is the CloudEvents source. Default
	// "/lexigram/<stream>".
	Source string `koanf:"source"`
	// JSON, outbound, re-encodes msgpack payloads as JSON.
	JSON bool `koanf:"json"`

	Workers        int           `koanf:"workers"`         // default 1
	BatchSize      int           `koanf:"batch_size"`      // default 100
	AckWait        time.Duration `koanf:"ack_wait"`        // outbound; default 30s
	MaxAckPending  int           `koanf:"max_ack_pending"` // outbound; default 1000
	PublishTimeout time.Duration `koanf:"publish_timeout"` // default 30s outbound, 10s inbound
	Backoff        BridgeBackoff `koanf:"backoff"`
	// DeadLetterSubject replaces lxbridge.dlq.<name>; a stream must
	// capture it.
	DeadLetterSubject string `koanf:"dead_letter_subject"`
	// ConnectTimeout is how long the broker has to answer when the bridge
	// starts; past it the start fails. Default 10s.
	ConnectTimeout time.Duration `koanf:"connect_timeout"`
	// StopTimeout bounds finishing the messages in flight at shutdown;
	// past it they are left to be delivered again. Default 30s.
	StopTimeout time.Duration `koanf:"stop_timeout"`
}

// BridgeBackoff spaces retries during an outage: Min, doubling up to
// Max. 0 takes the defaults, 100ms and 10s.
type BridgeBackoff struct {
	Min time.Duration `koanf:"min"`
	Max time.Duration `koanf:"max"`
}

// BridgeEvents say how an inbound bridge with land_as: events makes an
// event of each message (see bridges.InboundEvents): the event type from
// the type header or the types mapping, the aggregate from the
// CloudEvent's attributes, a header or a JSON field, the event ID from the
// broker's message ID.
type BridgeEvents struct {
	// TypeHeader names the header with the event type. Default Lx-Type,
	// which the CloudEvents formats fill from the CloudEvent's type.
	TypeHeader string `koanf:"type_header"`
	// Types map the type header's value, or the broker's routing key or
	// topic, to a registered event type name.
	Types map[string]string `koanf:"types"`
	// AggregateType is the aggregate type of messages that name none.
	AggregateType string `koanf:"aggregate_type"`
	// AggregateTypeHeader and AggregateIDHeader name headers with the
	// aggregate's type and ID.
	AggregateTypeHeader string `koanf:"aggregate_type_header"`
	AggregateIDHeader   string `koanf:"aggregate_id_header"`
	// AggregateIDField is a top-level field of the JSON body with the
	// aggregate ID.
	AggregateIDField string `koanf:"aggregate_id_field"`
}

// set reports whether any key of the section is given.
func (e BridgeEvents) set() bool {
	return e.TypeHeader != "" || len(e.Types) > 0 || e.AggregateType != "" || e.AggregateTypeHeader != "" || e.AggregateIDHeader != "" || e.AggregateIDField != ""
}

// LandsAsEvents reports whether an inbound bridge appends its messages to
// the event store.
func (b Bridge) LandsAsEvents() bool {
	return b.Direction == BridgeInbound && strings.EqualFold(b.LandAs, LandAsEvents)
}

// bridgeEventTypesKey is the mapping of event types: its keys and values
// hold dots, so it is parsed on its own, like settings.
const bridgeEventTypesKey = "events.types"

// DefaultBridge is what a bridge's unset keys are.
func DefaultBridge() Bridge {
	return Bridge{Format: "passthrough", ConnectTimeout: 10 * time.Second, StopTimeout: 30 * time.Second}
}

// ReadsEventStore reports whether an outbound bridge reads the event
// store's stream, whose subjects are events.
func (b Bridge) ReadsEventStore(s Store) bool { return b.Stream == "" || b.Stream == s.Stream }

// Label names the bridge in messages: "bridges[1](orders-out)", or
// "bridges[1]" while it has no name.
func (b Bridge) Label(i int) string {
	if b.Name == "" {
		return fmt.Sprintf("%s[%d]", bridgesKey, i)
	}
	return fmt.Sprintf("%s[%d](%s)", bridgesKey, i, b.Name)
}

// RedactedSettings is Settings as they may be shown: see the package
// documentation's Secrets.
func (b Bridge) RedactedSettings() map[string]string { return redactSettings(b.Settings) }

// String lists the bridge's settings as key=value, secrets redacted.
func (b Bridge) String() string { return flatString(reflect.ValueOf(b), "") }

// GoString keeps %#v from printing secrets.
func (b Bridge) GoString() string { return b.String() }

var (
	bridgeSettings     []setting
	bridgeSettingByKey = map[string]setting{}
	bridgeFormats      = []string{"passthrough", "cloudevents-binary", "cloudevents-structured"}
)

func init() {
	leaves(reflect.ValueOf(DefaultBridge()), "", func(key string, f reflect.StructField, v reflect.Value) {
		if f.Type.Kind() == reflect.Map {
			return // settings: parsed on their own
		}
		s := setting{key: key, redact: f.Tag.Get("redact"), typ: f.Type, def: v.Interface()}
		bridgeSettings = append(bridgeSettings, s)
		bridgeSettingByKey[key] = s
	})
}

// parseBridges reads the bridges section of a YAML file: a list of maps.
// Every key must name a bridge setting; problems name the bridge and the
// key as "bridges[0](orders-out).workers".
func parseBridges(raw any) ([]Bridge, []error) {
	items, ok := raw.([]any)
	if !ok {
		return nil, []error{&FieldError{Field: bridgesKey, Problem: `is not a list: write each bridge as an item, starting with "- name: ..."`}}
	}
	var problems []error
	out := make([]Bridge, 0, len(items))
	for i, item := range items {
		m, ok := item.(map[string]any)
		if !ok {
			problems = append(problems, &FieldError{Field: fmt.Sprintf("%s[%d]", bridgesKey, i), Problem: "is not a bridge: give it keys such as name, direction, broker and settings"})
			continue
		}
		b, errs := parseBridge(i, m)
		problems = append(problems, errs...)
		out = append(out, b)
	}
	return out, problems
}

func parseBridge(i int, m map[string]any) (Bridge, []error) {
	b := DefaultBridge()
	if name, ok := m["name"].(string); ok {
		b.Name = name
	}
	label := b.Label(i)
	var problems []error
	values := map[string]any{}
	settingsRaw, hasSettings := m["settings"]
	flat := map[string]any{}
	flatten(m, "", flat)
	for _, key := range slices.Sorted(maps.Keys(flat)) {
		v := flat[key]
		field := label + "." + key
		s, ok := bridgeSettingByKey[key]
		if !ok {
			if v == nil && isBridgeSection(key) {
				continue // an empty section keeps its defaults
			}
			problems = append(problems, unknownBridgeKey(field, key))
			continue
		}
		if v == nil {
			continue // left empty: the default
		}
		parsed, err := s.parse(field, v)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		values[key] = parsed
	}
	if hasSettings && settingsRaw != nil {
		settings, errs := parseBridgeSettings(label, settingsRaw)
		problems = append(problems, errs...)
		values["settings"] = settings
	}
	if ev, ok := m["events"].(map[string]any); ok && ev["types"] != nil {
		types, errs := parseEventTypes(label+"."+bridgeEventTypesKey, ev["types"])
		problems = append(problems, errs...)
		values[bridgeEventTypesKey] = types
	}
	// The values have their fields' types already; ErrorUnused only
	// guards against the table and the struct drifting apart.
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{TagName: "koanf", ErrorUnused: true, Result: &b})
	if err == nil {
		err = dec.Decode(unflatten(values))
	}
	if err != nil {
		problems = append(problems, fmt.Errorf("%s: %w", label, err))
	}
	return b, problems
}

// flatten copies m into out with dotted keys, leaving the maps whose keys
// may hold dots (settings, events.types) for their own parsers.
func flatten(m map[string]any, prefix string, out map[string]any) {
	for k, v := range m {
		key := prefix + k
		if key == "settings" || key == bridgeEventTypesKey {
			continue
		}
		if sub, ok := v.(map[string]any); ok {
			if len(sub) == 0 {
				out[key] = nil
				continue
			}
			flatten(sub, key+".", out)
			continue
		}
		out[key] = v
	}
}

func unflatten(flat map[string]any) map[string]any {
	out := map[string]any{}
	for key, v := range flat {
		m := out
		parts := strings.Split(key, ".")
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		m[parts[len(parts)-1]] = v
	}
	return out
}

func isBridgeSection(key string) bool {
	return slices.ContainsFunc(bridgeSettings, func(s setting) bool { return strings.HasPrefix(s.key, key+".") })
}

func unknownBridgeKey(field, key string) *FieldError {
	if isBridgeSection(key) {
		return &FieldError{Field: field, Problem: "is a section, not a setting: put its settings under it"}
	}
	known := make([]string, 0, len(bridgeSettings)+1)
	for _, s := range bridgeSettings {
		known = append(known, s.key)
	}
	known = append(known, "settings")
	slices.Sort(known)
	return &FieldError{Field: field, Problem: "is not a bridge setting: use " + strings.Join(known, ", ") +
		"; the broker's own keys (url, exchange, topic, ...) go under settings"}
}

// parseBridgeSettings turns the settings map's scalars into strings, as
// adapters take them: `prefetch: 10` and `declare: true` are fine. A
// nested map gives dotted keys (billing: {url: ...} is billing.url) and a
// list of scalars one comma-separated value.
func parseBridgeSettings(label string, raw any) (map[string]string, []error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, []error{&FieldError{Field: label + ".settings", Problem: "is not a map: write the broker's settings as key: value lines under it"}}
	}
	out := map[string]string{}
	var problems []error
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			key := prefix + k
			if sub, ok := m[k].(map[string]any); ok {
				walk(key+".", sub)
				continue
			}
			v, ok := settingString(m[k])
			if !ok {
				// The value is not shown: it may be a secret.
				problems = append(problems, &FieldError{Field: label + ".settings." + key, Problem: "is not a string, number, boolean or list of them"})
				continue
			}
			if _, dup := out[key]; dup {
				problems = append(problems, &FieldError{Field: label + ".settings." + key, Problem: "is given twice (as a dotted key and nested): give it once"})
				continue
			}
			out[key] = v
		}
	}
	walk("", m)
	return out, problems
}

// parseEventTypes reads events.types: names from outside (a header value,
// a routing key, a topic) to registered event type names, both strings.
func parseEventTypes(field string, raw any) (map[string]string, []error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, []error{&FieldError{Field: field, Problem: `is not a map: write one "name from the broker": "registered.event-type" line per type under it`}}
	}
	out := make(map[string]string, len(m))
	var problems []error
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v, ok := m[k].(string)
		if !ok || v == "" || k == "" {
			problems = append(problems, &FieldError{Field: field + "." + k, Value: strconv.Quote(fmt.Sprint(m[k])), Problem: `is not an event type name: map each name to a registered event type, e.g. "order.placed"`})
			continue
		}
		out[k] = v
	}
	return out, problems
}

func settingString(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case []any:
		parts := make([]string, len(x))
		for i, item := range x {
			s, ok := settingString(item)
			if _, nested := item.([]any); !ok || nested || strings.Contains(s, ",") {
				return "", false
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), true
	}
	return "", false
}

// validateBridges checks each bridge on its own and the names across
// them. Whether the broker is registered, and its settings, are checked
// where the adapters are linked, when the bridges start.
func validateBridges(bs []Bridge, store Store, p *problems) {
	first := map[string]int{}
	for i, b := range bs {
		label := b.Label(i)
		field := func(key string) string { return label + "." + key }
		switch {
		case b.Name == "":
			p.add(field("name"), "", `is empty: name the bridge, e.g. "orders-to-rabbitmq" (its consumer, metrics and dead-letter subject use the name)`)
		case !isToken(b.Name) || len(b.Name) > 64:
			p.add(field("name"), strconv.Quote(b.Name), "is not a bridge name: use 1 to 64 letters, digits, '-' and '_'")
		default:
			if j, dup := first[b.Name]; dup {
				p.add(field("name"), strconv.Quote(b.Name), fmt.Sprintf("is also the name of bridges[%d]: give each bridge its own name", j))
			} else {
				first[b.Name] = i
			}
		}
		if b.Broker == "" {
			p.add(field("broker"), "", `is empty: name the broker, e.g. "rabbitmq" or "kafka"`)
		}
		if !slices.ContainsFunc(bridgeFormats, func(f string) bool { return strings.EqualFold(f, b.Format) }) {
			p.add(field("format"), strconv.Quote(b.Format), `is not a format: use "passthrough", "cloudevents-binary" or "cloudevents-structured"`)
		}
		for _, n := range []struct {
			key string
			v   int
			def string
		}{{"workers", b.Workers, "1"}, {"batch_size", b.BatchSize, "100"}, {"max_ack_pending", b.MaxAckPending, "1000"}} {
			if n.v < 0 {
				p.add(field(n.key), strconv.Itoa(n.v), "is negative: use 0 for the default "+n.def+", or more")
			}
		}
		for _, d := range []struct {
			key string
			v   time.Duration
		}{{"ack_wait", b.AckWait}, {"publish_timeout", b.PublishTimeout}, {"backoff.min", b.Backoff.Min}, {"backoff.max", b.Backoff.Max}} {
			if d.v < 0 {
				p.add(field(d.key), quoteDuration(d.v), "is negative: use 0 for the default, or a positive duration")
			}
		}
		if b.AckWait > 0 && b.AckWait < time.Second {
			p.add(field("ack_wait"), quoteDuration(b.AckWait), `is under 1s: use at least "1s", or 0 for the default 30s`)
		}
		if b.Backoff.Min > 0 && b.Backoff.Max > 0 && b.Backoff.Min > b.Backoff.Max {
			p.add(field("backoff.min"), quoteDuration(b.Backoff.Min), "is longer than backoff.max "+quoteDuration(b.Backoff.Max)+": use at most that")
		}
		if b.ConnectTimeout <= 0 {
			p.add(field("connect_timeout"), quoteDuration(b.ConnectTimeout), `is not positive: use e.g. "10s"`)
		}
		if b.StopTimeout <= 0 {
			p.add(field("stop_timeout"), quoteDuration(b.StopTimeout), `is not positive: use e.g. "30s"`)
		}
		if b.DeadLetterSubject != "" && !isSubject(b.DeadLetterSubject, false) {
			p.add(field("dead_letter_subject"), strconv.Quote(b.DeadLetterSubject), "is not a subject to publish to: use tokens separated by '.', without spaces, '*' or '>'")
		}
		if b.Stream != "" && !isStreamName(b.Stream) {
			p.add(field("stream"), strconv.Quote(b.Stream), `is not a valid stream name: use no spaces, '.', '*', '>', '/' or '\'`)
		}
		switch b.Direction {
		case BridgeOutbound:
			b.validateOutbound(field, store, p)
		case BridgeInbound:
			b.validateInbound(field, store, p)
		case "":
			p.add(field("direction"), "", `is empty: use "outbound" (JetStream to the broker) or "inbound" (the broker to JetStream)`)
		default:
			p.add(field("direction"), strconv.Quote(b.Direction), `is not a direction: use "outbound" (JetStream to the broker) or "inbound" (the broker to JetStream)`)
		}
	}
}

func (b Bridge) validateOutbound(field func(string) string, store Store, p *problems) {
	if b.LandAs != "" {
		p.add(field("land_as"), strconv.Quote(b.LandAs), "is for inbound bridges: remove it, or set direction: inbound")
	}
	if b.Events.set() {
		p.add(field("events"), "", "is for inbound bridges with land_as: events: remove it, or set direction: inbound")
	}
	if b.Subject != "" {
		p.add(field("subject"), strconv.Quote(b.Subject), "is for inbound bridges: an outbound bridge reads stream and subjects; remove it, or set direction: inbound")
	}
	for i, s := range b.Subjects {
		if !isSubject(s, true) {
			p.add(fmt.Sprintf("%s[%d]", field("subjects"), i), strconv.Quote(s), "is not a subject filter: use tokens separated by '.', '*' for one token and '>' for the rest, without spaces")
		}
	}
	if (len(b.AggregateTypes) > 0 || len(b.EventTypes) > 0) && !b.ReadsEventStore(store) {
		key := "aggregate_types"
		if len(b.AggregateTypes) == 0 {
			key = "event_types"
		}
		p.add(field(key), "", fmt.Sprintf("needs the event store's stream, but stream is %q: leave stream empty (or set it to %q), or filter with subjects", b.Stream, store.Stream))
	}
	for i, t := range b.AggregateTypes {
		if !isToken(t) {
			p.add(fmt.Sprintf("%s[%d]", field("aggregate_types"), i), strconv.Quote(t), "is not an aggregate type: use letters, digits, '-' and '_'")
		}
	}
	for i, t := range b.EventTypes {
		if strings.TrimSpace(t) == "" {
			p.add(fmt.Sprintf("%s[%d]", field("event_types"), i), strconv.Quote(t), `is empty: use an event type name, e.g. "order.placed"`)
		}
	}
}

func (b Bridge) validateInbound(field func(string) string, store Store, p *problems) {
	switch {
	case b.LandAs != "" && !strings.EqualFold(b.LandAs, LandAsMessages) && !strings.EqualFold(b.LandAs, LandAsEvents):
		p.add(field("land_as"), strconv.Quote(b.LandAs), `is not what messages land as: use "messages" (plain messages on subject, the default) or "events" (events appended to the event store)`)
	case b.LandsAsEvents():
		b.validateEvents(field, store, p)
	case b.Events.set():
		p.add(field("events"), "", `is for land_as: events: remove it, or set land_as: events`)
	}
	switch {
	case b.LandsAsEvents():
		// The events land on the store's subjects: no subject of its own.
	case b.Subject == "":
		p.add(field("subject"), "", `is empty: name the JetStream subject messages land on, e.g. "inbound.payments"`)
	case !isSubject(b.Subject, false):
		p.add(field("subject"), strconv.Quote(b.Subject), "is not a subject to publish to: use tokens separated by '.', without spaces, '*' or '>'")
	case strings.HasPrefix(b.Subject, store.SubjectPrefix+".") && b.ReadsEventStore(store):
		p.add(field("subject"), strconv.Quote(b.Subject), fmt.Sprintf("is in the event store's subjects (%s.>): messages from a broker are not events of the store; use another subject, e.g. \"inbound.payments\", and a stream of its own", store.SubjectPrefix))
	}
	outboundOnly := []struct {
		key string
		set bool
	}{
		{"subjects", len(b.Subjects) > 0}, {"aggregate_types", len(b.AggregateTypes) > 0}, {"event_types", len(b.EventTypes) > 0},
		{"from_now", b.FromNow}, {"source", b.Source != ""}, {"json", b.JSON}, {"ack_wait", b.AckWait != 0}, {"max_ack_pending", b.MaxAckPending != 0},
	}
	for _, o := range outboundOnly {
		if o.set {
			p.add(field(o.key), "", "is for outbound bridges: remove it, or set direction: outbound")
		}
	}
}

// validateEvents checks an inbound bridge that appends to the event
// store: it has no subject or stream of its own, and its header names and
// aggregate type must be usable.
func (b Bridge) validateEvents(field func(string) string, store Store, p *problems) {
	if b.Subject != "" {
		p.add(field("subject"), strconv.Quote(b.Subject), "is for land_as: messages: events land on the event store's subjects; remove it")
	}
	if b.Stream != "" && b.Stream != store.Stream {
		p.add(field("stream"), strconv.Quote(b.Stream), fmt.Sprintf("is not the event store's stream %q: events are appended to the store; remove it", store.Stream))
	}
	for _, h := range []struct{ key, v string }{
		{"events.type_header", b.Events.TypeHeader}, {"events.aggregate_type_header", b.Events.AggregateTypeHeader}, {"events.aggregate_id_header", b.Events.AggregateIDHeader},
	} {
		if h.v != "" && strings.ContainsFunc(h.v, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == ':' }) {
			p.add(field(h.key), strconv.Quote(h.v), `is not a header name: use printable ASCII without spaces or ':', e.g. "ce-type"`)
		}
	}
	if t := b.Events.AggregateType; t != "" && (!isToken(t) || len(t) > 64) {
		p.add(field("events.aggregate_type"), strconv.Quote(t), "is not an aggregate type: use 1 to 64 letters, digits, '-' and '_'")
	}
	if f := b.Events.AggregateIDField; f != "" && strings.TrimSpace(f) != f {
		p.add(field("events.aggregate_id_field"), strconv.Quote(f), "starts or ends with white space: name a top-level field of the JSON body, e.g. \"orderId\"")
	}
}

func isStreamName(s string) bool {
	return s != "" && !strings.ContainsAny(s, `.*>/\`) && !strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || !unicode.IsPrint(r)
	})
}

// isSubject reports whether s is a NATS subject: non-empty tokens
// separated by '.', no spaces; wildcards ('*' as a token, '>' as the last)
// only in a filter.
func isSubject(s string, filter bool) bool {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return false
	}
	tokens := strings.Split(s, ".")
	for i, t := range tokens {
		switch {
		case t == "":
			return false
		case t == "*" || t == ">" && i == len(tokens)-1:
			if !filter {
				return false
			}
		case strings.ContainsAny(t, "*>"):
			return false
		}
	}
	return true
}
