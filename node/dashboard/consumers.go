package dashboard

import (
	"context"
	"net/http"
	"sort"
	"time"

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
	Bridges   []bridgeconfig.Status
	HasBridge bool // the node runs bridges
}

// consumersOf lists the account's consumers, stream by stream, and the
// node's bridges: a stream list and a consumer list per stream; it makes
// no consumer itself.
func (d *Dashboard) consumersOf(ctx context.Context) (consumersData, error) {
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
		out.Bridges, out.HasBridge = bs.Status(), bs.Len() > 0
	}
	return out, nil
}

// consumers serves GET /ui/consumers.
func (d *Dashboard) consumers(w http.ResponseWriter, r *http.Request) {
	data, err := d.consumersOf(r.Context())
	if err != nil {
		d.failErr(w, r, err, "reload")
		return
	}
	d.render(w, r, http.StatusOK, "consumers", "Consumers and bridges", "consumers", data)
}
