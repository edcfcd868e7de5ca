package bridges_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/memory"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/platform"
)

// A bridge counts what it moved and dead-lettered, with the last error,
// without a Metrics option too.
func TestOutboundCountsWithoutMetrics(t *testing.T) {
	js := newJS(t)
	st := newStore(t, js, platform.JSON)
	b := memory.NewBroker()
	b.Refuse(func(_ string, m *bridges.Message) error {
		if strings.Contains(string(m.Data), `"b-2"`) {
			return errors.New("message too large for the queue")
		}
		return nil
	})
	out, err := bridges.NewOutbound(t.Context(), js, b.Publisher("q"), bridges.OutboundOptions{
		Name: "counting", Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix(), Logger: embeddedtest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped(t, out.Stop)
	if c := out.Counts(); c != (bridges.Counts{}) {
		t.Fatalf("a new bridge counts %+v", c)
	}
	appendEvents(t, st, []string{"a", "b"}, 3)
	waitFor(t, "five moved and one dead-lettered", func() bool { c := out.Counts(); return c.Moved == 5 && c.DeadLettered == 1 })
	c := out.Counts()
	if !strings.Contains(c.LastError, "too large") || c.LastErrorTime.IsZero() || c.Errors != 0 || c.Bytes == 0 {
		t.Errorf("counts %+v: want the refusal as the last error, with its time, no failed attempt and the moved bytes", c)
	}
}
