package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/platform"
)

// overviewData is the overview page.
type overviewData struct {
	ServerVersion string
	ServerName    string
	Cluster       string
	APILevel      int
	Durability    string
	Level         platform.DurabilityLevel
	Required      platform.DurabilityLevel
	// Warning is set when the durability in force is below
	// store.require_durability.
	Warning string
	Streams []streamRow
	Took    time.Duration
	// The rates, which only the live updates know (withRates): the
	// page's first render shows "—".
	AppendRate  rate // events appended to the event stream, per second
	AckRate     rate // deliveries acknowledged, per second, summed over the event stream's durable consumers
	DeliverRate rate // deliveries, per second, summed the same way
	Consumers   int  // the durable consumers summed
}

type streamRow struct {
	Name     string
	Events   bool // the node's event stream
	Subjects []string
	Messages uint64
	Bytes    uint64
	FirstSeq uint64
	LastSeq  uint64
	LastTime time.Time
	Replicas int
	Storage  string
}

// overviewOf reads what the overview shows: a few requests (account
// info, the stream list, the event stream's info for its durability).
func (d *Dashboard) overviewOf(ctx context.Context) (overviewData, error) {
	start := time.Now()
	nc, js, store := d.n.Conn(), d.n.JetStream(), d.n.Store()
	o := overviewData{ServerVersion: nc.ConnectedServerVersion(), ServerName: nc.ConnectedServerName(), Cluster: nc.ConnectedClusterName()}
	info, err := js.AccountInfo(ctx)
	if err != nil {
		return o, platform.Errorf(platform.CodeStoreUnavailable, "read the JetStream account info: %w", err)
	}
	o.APILevel = info.API.Level
	dur, refusal := store.RefreshDurability(ctx)
	if refusal != nil && !errors.Is(refusal, platform.ErrDurability) {
		return o, refusal
	}
	o.Durability, o.Level = dur.String(), dur.Level()
	o.Required, err = platform.ParseDurabilityLevel(d.n.Config().Store.RequireDurability)
	if err != nil {
		o.Required = platform.DurabilityAny
	}
	o.Warning = durabilityWarning(dur, o.Required)
	lister := js.ListStreams(ctx)
	for si := range lister.Info() {
		o.Streams = append(o.Streams, streamRow{Name: si.Config.Name, Events: si.Config.Name == store.StreamName(), Subjects: si.Config.Subjects,
			Messages: si.State.Msgs, Bytes: si.State.Bytes, FirstSeq: si.State.FirstSeq, LastSeq: si.State.LastSeq, LastTime: si.State.LastTime,
			Replicas: si.Config.Replicas, Storage: strings.ToLower(si.Config.Storage.String())})
	}
	if err := lister.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return o, platform.Errorf(platform.CodeStoreUnavailable, "list the streams: %w", err)
	}
	o.Took = time.Since(start)
	return o, nil
}

// overviewRates derives the overview's rates from successive readings
// (see rates): the event stream's last sequence, read by overviewOf
// anyway, and the consumer sequences of its durable consumers'
// deliveries and ack floors, from one consumer list of the stream. It
// makes no consumer and costs an append nothing.
type overviewRates struct {
	rates  rates
	stream jetstream.Stream // the event stream's handle, looked up once
}

// add sets o's rates from a new reading.
func (or *overviewRates) add(ctx context.Context, d *Dashboard, o *overviewData) error {
	reading := map[string]uint64{}
	for _, s := range o.Streams {
		if s.Events {
			reading["append"] = s.LastSeq
		}
	}
	if or.stream == nil {
		s, err := d.n.JetStream().Stream(ctx, d.n.Store().StreamName())
		if err != nil {
			return platform.Errorf(platform.CodeStoreUnavailable, "read the consumers of stream %s for the consume rate: %w", d.n.Store().StreamName(), err)
		}
		or.stream = s
	}
	list := or.stream.ListConsumers(ctx)
	for info := range list.Info() {
		if info.Config.Durable == "" {
			continue
		}
		o.Consumers++
		reading["acked/"+info.Name] = info.AckFloor.Consumer
		reading["delivered/"+info.Name] = info.Delivered.Consumer
	}
	if err := list.Err(); err != nil {
		return platform.Errorf(platform.CodeStoreUnavailable, "list the consumers of stream %s for the consume rate: %w", d.n.Store().StreamName(), err)
	}
	per, ok := or.rates.update(time.Now(), reading)
	if !ok {
		return nil
	}
	if _, has := reading["append"]; has {
		o.AppendRate = rate{PerSecond: per["append"], Known: true}
	}
	o.AckRate = rate{PerSecond: sum(per, "acked/"), Known: true}
	o.DeliverRate = rate{PerSecond: sum(per, "delivered/"), Known: true}
	return nil
}

// durabilityWarning is the banner's text when dur is below required,
// else "".
func durabilityWarning(dur platform.Durability, required platform.DurabilityLevel) string {
	if dur.Meets(required) {
		return ""
	}
	return fmt.Sprintf("Durability in force is %q (level %s), below store.require_durability %q: appends fail with LXE-026 until the stream is back at that level (more replicas, or the servers' sync_interval: always).",
		dur.String(), dur.Level(), required)
}

// overview serves GET /ui/.
func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	o, err := d.overviewOf(r.Context())
	if err != nil {
		d.failErr(w, r, err, "check that the node reaches NATS, then reload")
		return
	}
	d.render(w, r, http.StatusOK, "overview", "Overview", "overview", o)
}
