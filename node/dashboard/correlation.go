package dashboard

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/synadia-io/orbit.go/jetstreamext"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// correlationPage is how many events one batched direct get of a
// correlation search asks for.
const correlationPage = 1000

// maxCorrelated bounds the events a correlation search shows.
const maxCorrelated = 1000

// correlationData is the events of one correlation ID.
type correlationData struct {
	ID     string
	Events []eventRow
	// From and Through are the positions read: the newest
	// Options.CorrelationScan events.
	From, Through uint64
	Truncated     bool // older events were not read, or more matched than shown
	Took          time.Duration
}

// correlated reads the newest events with batched direct gets (no
// consumer) and keeps those whose correlation ID, or own ID, is id: the
// correlation header is compared before anything is decoded.
func (d *Dashboard) correlated(ctx context.Context, id string) (correlationData, error) {
	start := time.Now()
	store := d.n.Store()
	c := correlationData{ID: id}
	st, err := store.State(ctx)
	if err != nil {
		return c, err
	}
	if st.LastPosition == 0 {
		return c, nil
	}
	c.Through = st.LastPosition
	c.From = 1
	if scan := uint64(d.opts.CorrelationScan); st.LastPosition > scan {
		c.From, c.Truncated = st.LastPosition-scan+1, true
	}
	var buf []platform.Envelope
	for seq, more := c.From, true; more && seq <= c.Through; {
		page, err := jetstreamext.GetBatch(ctx, d.n.JetStream(), store.StreamName(), correlationPage,
			jetstreamext.GetBatchSeq(seq), jetstreamext.GetBatchSubject(store.SubjectPrefix()+".>"))
		if err != nil {
			return c, platform.Errorf(platform.CodeStoreUnavailable, "read the event stream from %d: %w", seq, err)
		}
		more = false
		for m, err := range page {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				break
			}
			if err != nil {
				return c, platform.Errorf(platform.CodeStoreUnavailable, "read the event stream from %d: %w", seq, err)
			}
			seq, more = m.Sequence+1, m.Header.Get("Nats-Num-Pending") != "0"
			if m.Sequence > c.Through {
				more = false
				break
			}
			if m.Header.Get("Lx-Correlation") != id && m.Header.Get(lxjs.IDHeader) != id {
				continue
			}
			buf, err = store.DecodeAll(m.Subject, m.Sequence, m.Time, m.Header, m.Data, buf[:0])
			if err != nil {
				c.Events = append(c.Events, undecodableRow(err))
			}
			for _, e := range buf {
				c.Events = append(c.Events, rowOf(e))
			}
			if len(c.Events) >= maxCorrelated {
				c.Truncated = true
				c.Took = time.Since(start)
				return c, nil
			}
		}
	}
	c.Took = time.Since(start)
	return c, nil
}

// correlation serves GET /ui/correlations/{id}.
func (d *Dashboard) correlation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" {
		d.fail(w, r, http.StatusBadRequest, "no correlation ID given", "give a correlation ID, e.g. from an event's envelope")
		return
	}
	c, err := d.correlated(r.Context(), id)
	if err != nil {
		d.failErr(w, r, err, "check that the node reaches NATS, then reload")
		return
	}
	d.render(w, r, http.StatusOK, "correlation", "Correlation "+id, "aggregates", c)
}
