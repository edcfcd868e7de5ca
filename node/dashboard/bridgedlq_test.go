package dashboard_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/memory"
	"github.com/lexigram/events/config"
	"github.com/lexigram/events/node/dashboard"
)

// TestBridgeDeadLetters: events the broker refuses become the outbound
// bridge's dead letters, listed with their reason; one opens with the
// decoded event; "replay all" asks first, saying how many, then moves
// each once more in the background with its progress live, counting the
// one the broker still refuses (it stays) and going on past it; "discard
// all" removes what is left; each action is logged with who did it.
func TestBridgeDeadLetters(t *testing.T) {
	topic := "dashboard-dlq-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var fixed atomic.Bool
	memory.Default.Refuse(func(to string, m *bridges.Message) error {
		switch {
		case to != topic:
			return nil
		case strings.Contains(string(m.Data), "forever"):
			return errors.New("too large for the queue, forever")
		case strings.Contains(string(m.Data), "refused") && !fixed.Load():
			return errors.New("too large for the queue")
		}
		return nil
	})
	t.Cleanup(func() { memory.Default.Refuse(nil) })
	e := startWith(t, dashboard.Options{}, func(c *config.Config) {
		b := config.DefaultBridge()
		b.Name, b.Direction, b.Broker, b.Settings = "to-queue", "outbound", "memory", map[string]string{"topic": topic}
		b.StopTimeout = 5 * time.Second
		c.Bridges = []config.Bridge{b}
	}, nil)

	const n = 5
	for i := range n {
		e.append(t, fmt.Sprintf("acc-b%d", i), "", Deposited{Amount: 200 + i, Note: "refused"})
	}
	e.append(t, "acc-bf", "", Deposited{Amount: 999, Note: "forever"})
	waitUntil(t, fmt.Sprintf("%d bridge dead letters", n+1), func() bool {
		count := 0
		for _, err := range bridges.NewDeadLetterQueue(e.n.JetStream()).List(t.Context(), "to-queue") {
			if err != nil {
				return false
			}
			count++
		}
		return count == n+1
	})

	tb := newTab(t)
	tb.do("open the bridges' dead letters", chromedp.Navigate(e.url("/dlq")), chromedp.WaitVisible(`a[href$="/bridge-dlq"]`))
	tb.clickTo("follow the link to the bridges' dead letters", `a[href$="/bridge-dlq"]`, "#bridge-dead-letters")
	if got := tb.text("#bulk-form-to-queue label"); !strings.Contains(got, fmt.Sprintf("to-queue: %d dead letters", n+1)) {
		t.Errorf("the bulk form says %q: want the bridge and its %d dead letters", got, n+1)
	}
	if got := tb.text("#bridge-dead-letters tbody tr"); !strings.Contains(got, "too large for the queue") || !strings.Contains(got, "outbound") {
		t.Errorf("the first dead letter's row reads %q: want its direction and reason", got)
	}
	tb.screen("bridge-dead-letters")
	tb.clickTo("open the first dead letter", "#bridge-dead-letters tbody tr a", "#payload")
	if got := tb.text("#payload"); !strings.Contains(got, `"amount": 200`) || !strings.Contains(got, `"note": "refused"`) {
		t.Errorf("the dead letter's payload shows %q: want the decoded event", got)
	}
	if got := tb.text("#entry-error"); !strings.Contains(got, "too large") {
		t.Errorf("the dead letter's reason shows %q", got)
	}
	tb.screen("bridge-dead-letter")

	fixed.Store(true)
	tb.do("back to the list", chromedp.Navigate(e.url("/bridge-dlq?bridge=to-queue")), chromedp.WaitVisible(chromedp.ID("replay-all-to-queue")))
	tb.clickTo("ask to replay all", "#replay-all-to-queue", "#confirm")
	if q := tb.text("h1"); q != fmt.Sprintf("Replay %d dead letters of bridge to-queue?", n+1) {
		t.Errorf("the confirmation asks %q", q)
	}
	tb.do("give a reason", chromedp.SendKeys(chromedp.ID("reason"), "raised the queue's limit"))
	tb.clickTo("confirm the bulk replay", "#confirm", ".notice")
	job := `tr[data-job][data-bridge="to-queue"][data-action="replay"]`
	tb.waitFor("the bulk replay finished", fmt.Sprintf(`document.querySelector('%s[data-finished="yes"][data-done="%d"][data-failed="1"]:not([data-error])') !== null`, job, n))
	if got := tb.text(job); !strings.Contains(got, "1 could not be replayed and stay") || !strings.Contains(got, "forever") {
		t.Errorf("the finished replay shows %q: want the one that failed again and why", got)
	}
	tb.screen("bridge-bulk-replay-done")
	if got := memory.Default.Len(topic); got != n {
		t.Errorf("the broker holds %d messages after the replay, want the %d replayed", got, n)
	}
	tb.waitFor("only the refused one left", `document.querySelectorAll("#bridge-dead-letters tbody tr").length === 1`)

	tb.clickTo("ask to discard all", "#discard-all-to-queue", "#confirm")
	if q := tb.text("h1"); q != "Discard 1 dead letters of bridge to-queue?" {
		t.Errorf("the discard confirmation asks %q", q)
	}
	tb.clickTo("confirm the bulk discard", "#confirm", ".notice")
	tb.waitFor("the list empty", `document.querySelector("#none") !== null`)
	checkActions(t, e, []string{"action=bridge-dlq.replay-all target=to-queue", "action=bridge-dlq.discard-all target=to-queue"})
	if got := e.log.actions()[0]; !strings.Contains(got, fmt.Sprintf("entries=%d", n+1)) || !strings.Contains(got, "reason=raised the queue's limit") {
		t.Errorf("the bulk replay is logged as %q: want its count and reason", got)
	}

	// Wrong input gets a page that says what to do.
	if status, body := get(t, e, "GET", "/bridge-dlq/abc"); status != 400 || !strings.Contains(body, "not a dead letter") {
		t.Errorf("a bad dead letter number answered %d: %.300s", status, body)
	}
	if status, body := get(t, e, "GET", "/bridge-dlq/999999"); status != 404 || !strings.Contains(body, "does not exist") {
		t.Errorf("a dead letter that does not exist answered %d: %.300s", status, body)
	}
	if status, body := post(t, e, "/bridge-dlq/to-queue/all/purge", ""); status != 404 {
		t.Errorf("an unknown bulk action answered %d: %.300s", status, body)
	}
}
