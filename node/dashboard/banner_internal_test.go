package dashboard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/node"
	"github.com/lexigram/events/platform"
)

// A node cannot start below store.require_durability, and a stream's
// storage and persist mode cannot be lowered under it, so the banner
// for a stream lowered at run time is checked on the page itself.
func TestOverviewWarnsWhenDurabilityIsBelowTheRequiredLevel(t *testing.T) {
	memory := platform.Durability{Storage: "memory", Replicas: 1}
	fsync := platform.Durability{Storage: "file", Replicas: 1, Sync: platform.SyncAlways, Source: "embedded server"}
	if w := durabilityWarning(fsync, platform.DurabilityFsync); w != "" {
		t.Errorf("fsync before ack meets fsync, yet warns %q", w)
	}
	w := durabilityWarning(memory, platform.DurabilityReplicated)
	if !strings.Contains(w, `"in memory only"`) || !strings.Contains(w, "replicated") || !strings.Contains(w, "LXE-026") {
		t.Fatalf("warning %q: want it to name what is in force, the required level and the error appends get", w)
	}

	n, err := node.OpenInMemory(t.Context(), node.Options{Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	d, err := New(n, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	d.render(rec, httptest.NewRequest(http.MethodGet, "/ui/", nil), http.StatusOK, "overview", "Overview", "overview",
		overviewData{Durability: memory.String(), Level: memory.Level(), Required: platform.DurabilityReplicated, Warning: w})
	body := rec.Body.String()
	if !strings.Contains(body, `role="alert" id="durability-warning"`) || !strings.Contains(body, "below store.require_durability") {
		t.Errorf("the overview shows no durability banner:\n%s", body)
	}

	rec = httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/ui/", nil)
	req.RemoteAddr = "127.0.0.1:1"
	d.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "durability-warning") {
		t.Errorf("a node at its required level: status %d, banner shown: %v", rec.Code, strings.Contains(rec.Body.String(), "durability-warning"))
	}
}
