package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// durabilityJSON is a platform.Durability as /healthz and `lexigram
// streams info --json` show it.
type durabilityJSON struct {
	Text         string `json:"text"`
	Level        string `json:"level"`
	Storage      string `json:"storage"`
	Replicas     int    `json:"replicas"`
	Sync         string `json:"sync,omitempty"`
	SyncInterval string `json:"sync_interval,omitempty"`
	PersistAsync bool   `json:"persist_async,omitempty"`
	Source       string `json:"source,omitempty"`
}

func durabilityView(d platform.Durability) durabilityJSON {
	v := durabilityJSON{
		Text: d.String(), Level: string(d.Level()), Storage: d.Storage, Replicas: d.Replicas,
		Sync: string(d.Sync), PersistAsync: d.PersistAsync, Source: d.Source,
	}
	if d.Sync == platform.SyncPeriodic && d.SyncInterval > 0 {
		v.SyncInterval = d.SyncInterval.String()
	}
	return v
}

// writeHealth finishes /healthz once NATS and JetStream answer: it reads
// the stream's durability again (so a stream changed underneath is seen
// here, and the store refuses appends from then on) and answers 503 when
// it is below store.require_durability. The body is "ok" and a
// durability line, or JSON for Accept: application/json or ?format=json.
func writeHealth(ctx context.Context, w http.ResponseWriter, r *http.Request, store *lxjs.EventStore) {
	d, err := store.RefreshDurability(ctx)
	code, status := http.StatusOK, "ok"
	if err != nil {
		code, status = http.StatusServiceUnavailable, err.Error()
	}
	if r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "durability": durabilityView(d)})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, "%s\ndurability: %s (level %s)\n", status, d, d.Level())
}
