package bridges

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/vmihailenco/msgpack/v5"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// Format is how a message is represented on the other broker.
type Format int

const (
	// PassThrough sends the payload and headers as they are (outbound,
	// minus the Nats- headers); inbound, it stores the broker's payload and
	// headers (minus any Nats- header).
	PassThrough Format = iota
	// CloudEventsBinary puts CloudEvents 1.0 attributes in headers
	// (binary content mode) and the payload in the body.
	CloudEventsBinary
	// CloudEventsStructured puts a CloudEvents 1.0 JSON object in the body
	// (structured content mode, application/cloudevents+json).
	CloudEventsStructured
)

var formatNames = [...]string{"passthrough", "cloudevents-binary", "cloudevents-structured"}

func (f Format) String() string {
	if int(f) < len(formatNames) && f >= 0 {
		return formatNames[f]
	}
	return "format(" + strconv.Itoa(int(f)) + ")"
}

// ParseFormat reads a format name as the configuration spells it.
func ParseFormat(s string) (Format, error) {
	for i, n := range formatNames {
		if strings.EqualFold(s, n) {
			return Format(i), nil
		}
	}
	if s == "" {
		return PassThrough, nil
	}
	return 0, platform.Errorf(platform.CodeInvalidArgument, "format %q: use one of %s", s, strings.Join(formatNames[:], ", "))
}

// CloudEventsPrefixer is implemented by publishers whose protocol binding
// spells CloudEvents headers other than "ce-" (AMQP: "cloudEvents_").
type CloudEventsPrefixer interface {
	CloudEventsPrefix() string
}

// Headers of stored events (jetstream/envelope.go) that a bridge maps.
const (
	lxID          = "Lx-Id"
	lxType        = lxjs.TypeHeader
	lxSchema      = "Lx-Schema"
	lxVersion     = "Lx-Version"
	lxCodec       = "Lx-Codec"
	lxCorrelation = "Lx-Correlation"
	lxCausation   = "Lx-Causation"
)

// Extension attributes of our events in CloudEvents (lower-case letters
// and digits only, as the spec requires).
const (
	ceAggregateType = "lxaggregatetype"
	ceAggregateID   = "lxaggregateid"
	ceVersion       = "lxversion"
	ceSchema        = "lxschemaversion"
	cePosition      = "lxposition"
	ceCorrelation   = "lxcorrelationid"
	ceCausation     = "lxcausationid"
)

const ceJSON = "application/cloudevents+json"

// stored is one JetStream message as the outbound side reads it.
type stored struct {
	Stream  string
	Subject string
	Seq     uint64
	Time    time.Time
	Header  nats.Header
	Data    []byte
}

// encoder turns stored messages into broker messages.
type encoder struct {
	format   Format
	prefix   string // the event store's subject prefix; "" for plain subjects
	source   string
	cePrefix string
	json     bool
}

func contentType(codec string) string {
	switch codec {
	case "json":
		return "application/json"
	case "msgpack":
		return "application/msgpack"
	}
	return ""
}

func (e *encoder) encode(s stored) (*Message, error) {
	h := s.Header
	id := h.Get(lxID)
	if id == "" {
		id = h.Get(nats.MsgIdHdr)
	}
	if id == "" {
		id = s.Stream + "-" + strconv.FormatUint(s.Seq, 10)
	}
	m := &Message{ID: id, Key: s.Subject, Subject: s.Subject, Data: s.Data}
	var aggType, aggID string
	if e.prefix != "" {
		if rest, ok := strings.CutPrefix(s.Subject, e.prefix+"."); ok {
			if t, tok, ok := strings.Cut(rest, "."); ok && !strings.Contains(tok, ".") {
				if decoded, err := lxjs.DecodeToken(tok); err == nil {
					aggType, aggID, m.Key = t, decoded, decoded
				}
			}
		}
	}
	ct := contentType(h.Get(lxCodec))
	if e.json && h.Get(lxCodec) == "msgpack" {
		var v any
		if err := msgpack.Unmarshal(s.Data, &v); err != nil {
			return nil, platform.Errorf(platform.CodeCorruptEvent, "message %d on %s: the msgpack payload does not decode: %w", s.Seq, s.Subject, err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, platform.Errorf(platform.CodeCorruptEvent, "message %d on %s: the payload cannot be JSON: %w", s.Seq, s.Subject, err)
		}
		m.Data, ct = b, "application/json"
	}
	if e.format == PassThrough {
		m.Header = make(Header, len(h)+1)
		for k, vs := range h {
			if !natsReserved(k) && len(vs) > 0 {
				m.Header[k] = vs[0]
			}
		}
		if ct != "" {
			m.Header[HeaderContentType] = ct
		}
		if e.json && ct == "application/json" {
			m.Header[lxCodec] = "json"
		}
		return m, nil
	}

	typ := h.Get(lxType)
	if typ == "" {
		typ = s.Subject
	}
	attrs := [][2]string{
		{"specversion", "1.0"}, {"id", id}, {"source", e.source}, {"type", typ},
		{"time", s.Time.UTC().Format(time.RFC3339Nano)}, {cePosition, strconv.FormatUint(s.Seq, 10)},
	}
	if aggType != "" {
		attrs = append(attrs, [2]string{"subject", aggType + "/" + aggID}, [2]string{ceAggregateType, aggType}, [2]string{ceAggregateID, aggID})
	} else {
		attrs = append(attrs, [2]string{"subject", s.Subject})
	}
	for _, x := range [][2]string{{lxVersion, ceVersion}, {lxSchema, ceSchema}, {lxCorrelation, ceCorrelation}, {lxCausation, ceCausation}} {
		if v := h.Get(x[0]); v != "" {
			attrs = append(attrs, [2]string{x[1], v})
		}
	}
	m.Header = Header{}
	// Metadata has no CloudEvents attribute: it travels as plain headers.
	for k, vs := range h {
		if strings.HasPrefix(k, "Lx-Meta-") && len(vs) > 0 {
			m.Header[k] = vs[0]
		}
	}
	if e.format == CloudEventsBinary {
		for _, a := range attrs {
			m.Header[e.cePrefix+a[0]] = a[1]
		}
		if ct != "" {
			m.Header[HeaderContentType] = ct
		}
		return m, nil
	}
	obj := make(map[string]any, len(attrs)+2)
	for _, a := range attrs {
		obj[a[0]] = a[1]
	}
	if ct != "" {
		obj["datacontenttype"] = ct
	}
	if ct == "application/json" && json.Valid(m.Data) {
		obj["data"] = json.RawMessage(m.Data)
	} else {
		obj["data_base64"] = base64.StdEncoding.EncodeToString(m.Data)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, platform.Errorf(platform.CodeCorruptEvent, "message %d on %s: build the CloudEvents JSON: %w", s.Seq, s.Subject, err)
	}
	m.Data = b
	m.Header[HeaderContentType] = ceJSON
	return m, nil
}

// cePrefixes are the spellings of CloudEvents headers the inbound side
// accepts: HTTP and Kafka, then AMQP's current and older ones.
var cePrefixes = []string{"ce-", "ce_", "cloudEvents_", "cloudEvents:"}

// decoder turns broker messages into JetStream messages.
type decoder struct {
	format Format
	bridge string
}

// decode builds the JetStream message of m on subject. Errors mean the
// message can never be stored: it goes to the dead-letter subject.
func (d *decoder) decode(m *Message, subject string) (*nats.Msg, error) {
	h, err := natsHeader(m.Header)
	if err != nil {
		return nil, err
	}
	out := &nats.Msg{Subject: subject, Header: h, Data: m.Data}
	ceID, ceSource := "", ""
	switch d.format {
	case CloudEventsBinary:
		attrs := map[string]string{}
		for k, v := range h {
			for _, p := range cePrefixes {
				if len(k) > len(p) && strings.EqualFold(k[:len(p)], p) {
					attrs[strings.ToLower(k[len(p):])] = v[0]
					delete(h, k)
				}
			}
		}
		if err := requireCE(attrs); err != nil {
			return nil, err
		}
		for k, v := range attrs {
			h["ce-"+k] = []string{v}
		}
		h[lxType], h[lxID] = []string{attrs["type"]}, []string{attrs["id"]}
		ceID, ceSource = attrs["id"], attrs["source"]
	case CloudEventsStructured:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(m.Data, &obj); err != nil {
			return nil, platform.Errorf(platform.CodeInvalidArgument, "structured CloudEvent: the body is not a JSON object: %w", err)
		}
		attrs := map[string]string{}
		for k, raw := range obj {
			if k == "data" || k == "data_base64" {
				continue
			}
			var s string
			if json.Unmarshal(raw, &s) != nil {
				s = string(raw) // numbers and booleans keep their JSON text
			}
			if strings.ContainsAny(s, "\r\n") || !validHeaderName(k) {
				return nil, platform.Errorf(platform.CodeInvalidArgument, "structured CloudEvent: attribute %q cannot be a header", k)
			}
			attrs[strings.ToLower(k)] = s
		}
		if err := requireCE(attrs); err != nil {
			return nil, err
		}
		out.Data = nil
		if raw, ok := obj["data_base64"]; ok {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, platform.Errorf(platform.CodeInvalidArgument, "structured CloudEvent: data_base64 is not a string: %w", err)
			}
			if out.Data, err = base64.StdEncoding.DecodeString(s); err != nil {
				return nil, platform.Errorf(platform.CodeInvalidArgument, "structured CloudEvent: data_base64: %w", err)
			}
		} else if raw, ok := obj["data"]; ok {
			out.Data = []byte(raw)
		}
		delete(h, HeaderContentType)
		for k, v := range attrs {
			if k == "datacontenttype" {
				h[HeaderContentType] = []string{v}
				continue
			}
			h["ce-"+k] = []string{v}
		}
		h[lxType], h[lxID] = []string{attrs["type"]}, []string{attrs["id"]}
		ceID, ceSource = attrs["id"], attrs["source"]
	}
	h[nats.MsgIdHdr] = []string{d.msgID(m, ceSource, ceID)}
	return out, nil
}

// msgID derives the Nats-Msg-Id of an inbound message: the bridge's name
// and the broker's message ID, so a redelivery within the stream's
// duplicate window is stored once. A message without a broker ID falls
// back on its CloudEvents source and ID, then on a hash of its content.
func (d *decoder) msgID(m *Message, ceSource, ceID string) string {
	switch {
	case m.ID != "":
		return d.bridge + ":" + m.ID
	case ceID != "":
		return d.bridge + ":ce:" + ceSource + "/" + ceID
	}
	sum := sha256.New()
	fmt.Fprintf(sum, "%s\x00%s\x00%d\x00", m.Subject, m.Key, len(m.Header))
	sum.Write(m.Data)
	return d.bridge + ":sha256:" + hex.EncodeToString(sum.Sum(nil))
}

func requireCE(attrs map[string]string) error {
	var missing []string
	for _, k := range []string{"specversion", "id", "source", "type"} {
		if attrs[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return platform.Errorf(platform.CodeInvalidArgument, "CloudEvent without %s: every CloudEvent needs specversion, id, source and type", strings.Join(missing, ", "))
	}
	if !strings.HasPrefix(attrs["specversion"], "1.") {
		return platform.Errorf(platform.CodeInvalidArgument, "CloudEvent specversion %q: only 1.x is understood", attrs["specversion"])
	}
	return nil
}
