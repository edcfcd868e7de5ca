package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

// bridgeDeadLetterRow is one bridge dead letter as the pages show it.
type bridgeDeadLetterRow struct {
	bridges.DeadLetter
	Headers    map[string]string
	Payload    string // the event as JSON (outbound), else the body as text
	PayloadErr string
	Replayable bool // this node runs the bridge
}

func (d *Dashboard) bridgeDeadLetterRow(dl bridges.DeadLetter, withPayload bool) bridgeDeadLetterRow {
	row := bridgeDeadLetterRow{DeadLetter: dl}
	if set := d.n.Bridges(); set != nil {
		row.Replayable = set.Runs(dl.Bridge)
	}
	if !withPayload {
		return row
	}
	row.Headers = map[string]string{}
	for k := range dl.Header {
		row.Headers[k] = dl.Header.Get(k)
	}
	switch {
	case dl.Truncated:
		row.PayloadErr = "the body did not fit in the dead letter; a replay reads the event from the bridge's stream"
		return row
	case dl.Direction == "outbound" && dl.Header.Get("Lx-Type") != "":
		env, err := d.n.Store().Decode(dl.Subject, dl.Sequence, dl.Time, dl.Header, dl.Data)
		if err == nil {
			if body, err := json.MarshalIndent(env.Event, "", "  "); err == nil {
				row.Payload = string(body)
				return row
			}
		}
		row.PayloadErr = fmt.Sprintf("the event does not decode: %v", err)
	}
	if utf8.Valid(dl.Data) {
		row.Payload = string(dl.Data)
	} else {
		row.Payload = strconv.Quote(string(dl.Data))
	}
	return row
}

// bridgeDLQData is the bridges' dead letters page.
type bridgeDLQData struct {
	Bridge     string
	Entries    []bridgeDeadLetterRow
	Truncated  bool
	Bridges    map[string]int // dead letters per bridge, of those listed
	Bulk       []bulkBridge
	Jobs       []bulkRow
	ForBridges bool // true: the bulk-jobs fragment says so
}

// bulkBridge is a bridge with listed dead letters.
type bulkBridge struct {
	Bridge     string
	Listed     int
	Replayable bool
}

func (d *Dashboard) bridgeQueue() *bridges.DeadLetterQueue {
	return bridges.NewDeadLetterQueue(d.n.JetStream())
}

func (d *Dashboard) bridgeDeadLetters(ctx context.Context, bridge string) (bridgeDLQData, error) {
	out := bridgeDLQData{Bridge: bridge, Bridges: map[string]int{}, Jobs: d.bulk.rows(true), ForBridges: true}
	replayable := map[string]bool{}
	for dl, err := range d.bridgeQueue().List(ctx, bridge) {
		if err != nil {
			return out, err
		}
		if len(out.Entries) == maxDeadLetters {
			out.Truncated = true
			break
		}
		row := d.bridgeDeadLetterRow(dl, false)
		out.Entries = append(out.Entries, row)
		out.Bridges[dl.Bridge]++
		replayable[dl.Bridge] = row.Replayable
	}
	for _, b := range slices.Sorted(maps.Keys(out.Bridges)) {
		out.Bulk = append(out.Bulk, bulkBridge{Bridge: b, Listed: out.Bridges[b], Replayable: replayable[b]})
	}
	return out, nil
}

// bridgeDLQ serves GET /ui/bridge-dlq?bridge=.
func (d *Dashboard) bridgeDLQ(w http.ResponseWriter, r *http.Request) {
	data, err := d.bridgeDeadLetters(r.Context(), r.URL.Query().Get("bridge"))
	if err != nil {
		d.failErr(w, r, err, "give a bridge's name as configured, or none for all")
		return
	}
	d.render(w, r, http.StatusOK, "bridgedlq", "Bridges' dead letters", "dlq", data)
}

func bridgeSeq(r *http.Request) (uint64, error) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("%q is not a dead letter's number", r.PathValue("seq"))
	}
	return seq, nil
}

// bridgeEntry serves GET /ui/bridge-dlq/{seq}: one dead letter with its
// payload and headers.
func (d *Dashboard) bridgeEntry(w http.ResponseWriter, r *http.Request) {
	seq, err := bridgeSeq(r)
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error(), "open a dead letter from the bridges' dead letters page")
		return
	}
	dl, err := d.bridgeQueue().Get(r.Context(), seq)
	if err != nil {
		if hasCode(err, platform.CodeInvalidArgument) {
			d.fail(w, r, http.StatusNotFound, err.Error(), "it was replayed or discarded; see the bridges' dead letters page")
			return
		}
		d.failErr(w, r, err, "reload")
		return
	}
	d.render(w, r, http.StatusOK, "bridgeentry", fmt.Sprintf("Bridge dead letter %d", seq), "dlq", d.bridgeDeadLetterRow(dl, true))
}

// replayBridgeDeadLetter replays through the node's bridges, saying
// where to go when this node does not run them.
func (d *Dashboard) replayBridgeDeadLetter(ctx context.Context, seq uint64) error {
	set := d.n.Bridges()
	if set == nil {
		return platform.Errorf(platform.CodeBridgeDelivery, "this node runs no bridges: replay bridge dead letter %d from the process that runs its bridge, or discard it", seq)
	}
	return set.Replay(ctx, seq)
}

// bridgeEntryAction serves POST /ui/bridge-dlq/{seq}/{replay|discard}.
func (d *Dashboard) bridgeEntryAction(w http.ResponseWriter, r *http.Request) {
	seq, err := bridgeSeq(r)
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error(), "open a dead letter from the bridges' dead letters page")
		return
	}
	action := r.PathValue("action")
	cancel := d.opts.Prefix + "/bridge-dlq/" + strconv.FormatUint(seq, 10)
	var notice string
	switch action {
	case "replay":
		if !d.confirmed(w, r, confirmData{Question: fmt.Sprintf("Replay bridge dead letter %d?", seq), Verb: "Replay", Cancel: cancel,
			Detail: "The bridge moves the message once more; the dead letter is removed once it did, and stays as it was if it fails again."}) {
			return
		}
		err = d.replayBridgeDeadLetter(r.Context(), seq)
		notice = fmt.Sprintf("Bridge dead letter %d moved.", seq)
	case "discard":
		if !d.confirmed(w, r, confirmData{Question: fmt.Sprintf("Discard bridge dead letter %d?", seq), Verb: "Discard", Cancel: cancel,
			Detail: "The dead letter is removed for good: the message will never be moved."}) {
			return
		}
		err = d.bridgeQueue().Discard(r.Context(), seq)
		notice = fmt.Sprintf("Bridge dead letter %d discarded.", seq)
	default:
		d.fail(w, r, http.StatusNotFound, fmt.Sprintf("there is no dead letter action %q", action), "use replay or discard")
		return
	}
	d.logAction(r, "bridge-dlq."+action, strconv.FormatUint(seq, 10), err)
	if err != nil {
		d.failErr(w, r, err, "see the bridges' dead letters page")
		return
	}
	d.redirect(w, r, "/bridge-dlq", notice)
}

// bridgeBulkAction serves POST /ui/bridge-dlq/{bridge}/all/{replay|discard}:
// every dead letter of the bridge (since the form's "since"), after a
// confirmation that says how many, as the handlers' bulk actions do. A
// replay goes on past a dead letter that fails again (it stays; the
// progress counts it), and stops if the dead-letter stream cannot be
// reached.
func (d *Dashboard) bridgeBulkAction(w http.ResponseWriter, r *http.Request) {
	bridge, action := r.PathValue("bridge"), r.PathValue("action")
	back := "/bridge-dlq?bridge=" + url.QueryEscape(bridge)
	if action != "replay" && action != "discard" {
		d.fail(w, r, http.StatusNotFound, fmt.Sprintf("there is no bulk dead letter action %q", action), "use replay or discard")
		return
	}
	since, until, sinceText, ok := d.bulkWindow(w, r, "dead letter of the bridge")
	if !ok {
		return
	}
	var seqs []uint64
	for dl, err := range d.bridgeQueue().List(r.Context(), bridge) {
		if err != nil {
			d.failErr(w, r, err, "pick a bridge on the bridges' dead letters page")
			return
		}
		if !dl.Time.Before(since) && !dl.Time.After(until) {
			seqs = append(seqs, dl.Seq)
		}
	}
	which := "bridge " + bridge
	if !since.IsZero() {
		which += " dead-lettered since " + when(since)
	}
	if len(seqs) == 0 {
		d.redirect(w, r, back, fmt.Sprintf("No dead letters of %s: nothing to %s.", which, action))
		return
	}
	if action == "replay" && (d.n.Bridges() == nil || !d.n.Bridges().Runs(bridge)) {
		d.fail(w, r, http.StatusConflict, fmt.Sprintf("this node does not run bridge %s, so it cannot replay its dead letters", bridge),
			"replay them from the process that runs the bridge, or discard them")
		return
	}
	c := confirmData{Verb: "Replay all", Cancel: d.opts.Prefix + back, Reason: true,
		Hidden:   map[string]string{"until": until.Format(time.RFC3339Nano)},
		Question: fmt.Sprintf("Replay %d dead letters of %s?", len(seqs), which),
		Detail:   fmt.Sprintf("Bridge %s moves each of the %d messages once more, one after the other; a dead letter is removed once its message moved and stays if it fails again. Dead letters written after this page was shown are not taken.", bridge, len(seqs))}
	if action == "discard" {
		c.Verb = "Discard all"
		c.Question = fmt.Sprintf("Discard %d dead letters of %s?", len(seqs), which)
		c.Detail = fmt.Sprintf("The %d dead letters are removed for good: bridge %s will never move these messages. Dead letters written after this page was shown are not taken.", len(seqs), bridge)
	}
	if !since.IsZero() {
		c.Hidden["since"] = since.Format(time.RFC3339Nano)
	}
	if !d.confirmed(w, r, c) {
		return
	}
	job := &bulkJob{Action: action, Bridge: bridge, Since: since, By: actor(r.Context()), Total: len(seqs), Started: time.Now()}
	if other := d.bulk.add(job); other != nil {
		d.busy(w, r, other)
		return
	}
	d.logAction(r, "bridge-dlq."+action+"-all", bridge, nil, "entries", len(seqs), "since", sinceText, "job", job.ID)
	q := d.bridgeQueue()
	go d.runBulk(context.WithoutCancel(r.Context()), job, len(seqs), func(ctx context.Context, i int) (stepResult, error) {
		var err error
		if action == "replay" {
			err = d.replayBridgeDeadLetter(ctx, seqs[i])
		} else {
			err = q.Discard(ctx, seqs[i])
		}
		switch platform.CodeOf(err) {
		case "":
			return stepDone, nil
		case platform.CodeInvalidArgument: // replayed or discarded meanwhile
			return stepGone, nil
		case platform.CodeBridgeDelivery: // this message failed again; it stays
			return stepFailed, err
		}
		return stepStop, fmt.Errorf("%s bridge dead letter %d: %w", action, seqs[i], err)
	})
	d.bulkStarted(w, r, back, job, which)
}
