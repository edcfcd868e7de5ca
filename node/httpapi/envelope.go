package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
)

// envelopeJSON is an event as the API shows it: the envelope's fields
// and the decoded event.
type envelopeJSON struct {
	ID            string            `json:"id"`
	Type          string            `json:"type"`
	SchemaVersion int               `json:"schema_version"`
	AggregateType string            `json:"aggregate_type"`
	AggregateID   string            `json:"aggregate_id"`
	Version       uint64            `json:"version"`
	Position      uint64            `json:"position"`
	Time          time.Time         `json:"time,omitzero"`
	CorrelationID string            `json:"correlation_id,omitempty"`
	CausationID   string            `json:"causation_id,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	Event         any               `json:"event"`
	Retired       bool              `json:"retired,omitempty"`
	Error         string            `json:"error,omitempty"` // the event does not decode
}

func toJSON(e platform.Envelope) envelopeJSON {
	return envelopeJSON{ID: e.ID, Type: e.Type, SchemaVersion: e.SchemaVersion, AggregateType: e.Stream.Type, AggregateID: e.Stream.ID,
		Version: e.Version, Position: e.Position, Time: e.Time, CorrelationID: e.CorrelationID, CausationID: e.CausationID,
		Metadata: e.Metadata, Event: e.Event, Retired: e.Retired()}
}

// undecodable is the form of an event that does not decode.
func undecodable(err error) envelopeJSON {
	j := envelopeJSON{Error: err.Error()}
	var de *platform.DecodeError
	if errors.As(err, &de) {
		j.AggregateType, j.AggregateID, j.Version, j.Position = de.Stream.Type, de.Stream.ID, de.Version, de.Position
		j.Type, j.SchemaVersion = de.Type, de.SchemaVersion
	}
	return j
}

type aggregateJSON struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type changeJSON struct {
	Aggregate     aggregateJSON `json:"aggregate"`
	FirstVersion  uint64        `json:"first_version"`
	LastVersion   uint64        `json:"last_version"`
	FirstPosition uint64        `json:"first_position"`
	LastPosition  uint64        `json:"last_position"`
	Durability    string        `json:"durability,omitempty"`
}

// resultJSON is a command's result.
type resultJSON struct {
	Aggregate *aggregateJSON `json:"aggregate,omitempty"` // nil: the command changed nothing
	Version   uint64         `json:"version"`
	Position  uint64         `json:"position"`
	Events    []envelopeJSON `json:"events"`
	Changes   []changeJSON   `json:"changes"`
}

func resultToJSON(res handlers.CommandResult) resultJSON {
	out := resultJSON{Version: res.Version, Position: res.Position, Events: []envelopeJSON{}, Changes: []changeJSON{}}
	if res.Aggregate != (platform.StreamID{}) {
		out.Aggregate = &aggregateJSON{Type: res.Aggregate.Type, ID: res.Aggregate.ID}
	}
	for _, e := range res.Events {
		out.Events = append(out.Events, toJSON(e))
	}
	for _, c := range res.Changes {
		cj := changeJSON{Aggregate: aggregateJSON{c.Aggregate.Type, c.Aggregate.ID}, FirstVersion: c.Result.FirstVersion,
			LastVersion: c.Result.LastVersion, FirstPosition: c.Result.FirstPosition, LastPosition: c.Result.LastPosition}
		if c.Result.Durability.Storage != "" {
			cj.Durability = c.Result.Durability.String()
		}
		out.Changes = append(out.Changes, cj)
	}
	return out
}

// writeJSON sends v as JSON with status 200; a value that does not
// encode is the node's fault (a registered type JSON cannot carry).
func writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // subjects carry '>'
	err := enc.Encode(v)
	if err != nil {
		writeProblem(w, r, &problem{Status: http.StatusInternalServerError, Detail: "encode the answer as JSON: " + err.Error(),
			Fix: "give the types the answer carries a JSON encoding"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf.Bytes())
}
