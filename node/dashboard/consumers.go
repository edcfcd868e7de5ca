package dashboard

import (
	"context"
	"net/http"
	"sort"
	"time"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/bridgeconfig"
	"github.com/lexigram/events/platform"
)

// maxConsumersListed bounds the consumers the page lists.
const maxConsumersListed = 500

// consumerRow is one JetStream consumer of the account.
type consumerRow struct {
	Stream      string
	Name        string
	Durable     bool
	Filter      string
	Pending     uint64 // not yet delivered
	AckPending  int    // delivered, not yet acknowledged
	Redelivered int    // delivered more than once, not yet acknowledged
	Waiting     int    // pull requests waiting
	Delivered   uint64 // the last stream position delivered
	AckFloor    uint64 // every position up to here is acknowledged
	LastActive  time.Time
}

// consumersData is the consumers and bridges page.
type consumersData struct {
	Consumers []consumerRow
	Truncated bool
	Bridges   []bridgeRow
	HasBridge bool // the node runs bridges
}

// bridgeRow is one bridge: its connection, what it moved and its
// errors since it started, and its rate, which only the live updates
// know (the page's first render shows "—").
type bridgeRow struct {
	bridgeconfig.Status
	bridges.Counts
	Rate rate // messages moved per second, in the bridge's direction
}

// bridgeRows reads the node's bridges; with r, their rates from the
// growth of their moved counts since r's last reading.
func bridgeRows(bs *bridgeconfig.Set, r *rates) []bridgeRow {
	status, counts := bs.Status(), bs.Counts()
	rows := make([]bridgeRow, len(status))
	reading := make(map[string]uint64, len(status))
	for i := range status {
		rows[i] = bridgeRow{Status: status[i]}
		if i < len(counts) {
			rows[i].Counts = counts[i]
		}
		reading[rows[i].Name] = rows[i].Moved
	}
	if r == nil {
		return rows
	}
	if per, ok := r.update(time.Now(), reading); ok {
		for i := range rows {
			if v, has := per[rows[i].Name]; has {
				rows[i].Rate = rate{PerSecond: v, Known: true}
			}
		}
	}
	return rows
}

// consumersOf lists the account's consumers, stream by stream, and the
// node's bridges: a stream list and a consumer list per stream; it makes
// no consumer itself. With bridgeRates (the live updates), the bridges'
// rates are derived from its readings.
func (d *Dashboard) consumersOf(ctx context.Context, bridgeRates *rates) (consumersData, error) {
	var out consumersData
	js := d.n.JetStream()
	streams := js.StreamNames(ctx)
	for name := range streams.Name() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			continue // deleted meanwhile
		}
		list := s.ListConsumers(ctx)
		for info := range list.Info() {
			if len(out.Consumers) == maxConsumersListed {
				out.Truncated = true
				break
			}
			filter := info.Config.FilterSubject
			if filter == "" && len(info.Config.FilterSubjects) > 0 {
				filter = info.Config.FilterSubjects[0]
				if len(info.Config.FilterSubjects) > 1 {
					filter += " …"
				}
			}
			row := consumerRow{Stream: name, Name: info.Name, Durable: info.Config.Durable != "", Filter: filter,
				Pending: info.NumPending, AckPending: info.NumAckPending, Redelivered: info.NumRedelivered, Waiting: info.NumWaiting,
				Delivered: info.Delivered.Stream, AckFloor: info.AckFloor.Stream}
			if info.Delivered.Last != nil {
				row.LastActive = *info.Delivered.Last
			}
			out.Consumers = append(out.Consumers, row)
		}
		if err := list.Err(); err != nil {
			return out, platform.Errorf(platform.CodeStoreUnavailable, "list the consumers of stream %s: %w", name, err)
		}
	}
	if err := streams.Err(); err != nil {
		return out, platform.Errorf(platform.CodeStoreUnavailable, "list the streams: %w", err)
	}
	sort.Slice(out.Consumers, func(i, j int) bool {
		a, b := out.Consumers[i], out.Consumers[j]
		return a.Stream < b.Stream || a.Stream == b.Stream && a.Name < b.Name
	})
	if bs := d.n.Bridges(); bs != nil {
		out.Bridges, out.HasBridge = bridgeRows(bs, bridgeRates), bs.Len() > 0
	}
	return out, nil
}

// consumers serves GET /ui/consumers.
func (d *Dashboard) consumers(w http.ResponseWriter, r *http.Request) {
	data, err := d.consumersOf(r.Context(), nil)
	if err != nil {
		d.failErr(w, r, err, "reload")
		return
	}
	d.render(w, r, http.StatusOK, "consumers", "Consumers and bridges", "consumers", data)
}
