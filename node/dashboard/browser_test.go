package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The browser every test of the package shares (TestMain), or why there
// is none.
var (
	browser    context.Context
	browserErr error
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	stop, err := startBrowser()
	if err != nil {
		browserErr = err
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "dashboard tests: chromium cannot start under CI=true: %v\n", err)
			return 1
		}
	} else {
		defer stop()
	}
	return m.Run()
}

// startBrowser starts Debian's chromium headless with a fresh profile.
func startBrowser() (stop func(), err error) {
	path, err := exec.LookPath("chromium")
	if err != nil {
		return nil, fmt.Errorf("no chromium on PATH (apt-get install -y chromium): %w", err)
	}
	profile, err := os.MkdirTemp("", "lexigram-dashboard-chromium-")
	if err != nil {
		return nil, err
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.UserDataDir(profile), chromedp.NoFirstRun,
		chromedp.DisableGPU, chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900))
	ctx, cancel := chromedp.NewContext(alloc)
	stop = func() {
		cancel()
		cancelAlloc()
		_ = os.RemoveAll(profile)
	}
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err = <-started:
	case <-time.After(60 * time.Second):
		err = errors.New("chromium did not start within 60s")
	}
	if err != nil {
		stop()
		return nil, fmt.Errorf("start chromium %s: %w", path, err)
	}
	browser = ctx
	return stop, nil
}

// tab is one browser tab of a test, with the console messages it saw.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// newTab opens a tab in the shared browser; it closes with the test.
func newTab(t *testing.T) *tab {
	t.Helper()
	if browser == nil {
		t.Skipf("skipped: chromium cannot start (%v); install it with apt-get install -y chromium (under CI=true this fails)", browserErr)
	}
	ctx, cancel := chromedp.NewContext(browser)
	// Cookies are per host, not per port: one test's sign-in must not
	// carry over to the next test's server on another port.
	clear := func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, network.ClearBrowserCookies, cdp.Empty{})
		return chromedp.Void{}, err
	}
	if err := chromedp.Do(ctx, clear); err != nil {
		cancel()
		t.Fatalf("open a tab: %v", err)
	}
	tb := &tab{t: t}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m)
			tb.mu.Unlock()
		}
	}()
	timed, cancelTimed := context.WithTimeout(ctx, 60*time.Second)
	tb.ctx = timed
	t.Cleanup(func() {
		cancelTimed()
		cancel()
		<-done
	})
	return tb
}

// do runs browser actions, failing the test on an error.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, steps...); err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
}

// text is the visible text of the first element matching the selector,
// once there is one. It is read in one evaluation in the page, so that
// a live update cannot swap the element between finding and reading it.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	expr := fmt.Sprintf(`(() => { const el = document.querySelector(%s); return el === null ? null : {text: el.innerText}; })()`, jsString(sel))
	return poll[struct {
		Text string `json:"text"`
	}](tb, "an element "+sel, expr).Text
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// eval evaluates a JavaScript expression.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript predicate until it is true (30s at most).
func (tb *tab) waitFor(what, predicate string) {
	tb.t.Helper()
	poll[chromedp.Void](tb, what, predicate)
}

// poll evaluates a JavaScript expression until its value is truthy (30s
// at most) and returns that value. A navigation under way ends a poll
// on the old page: it polls the new one.
func poll[T any](tb *tab, what, expr string) T {
	tb.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := chromedp.Run(tb.ctx, chromedp.Poll[T](expr, chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(time.Until(deadline))))
		if err == nil {
			return v
		}
		msg := err.Error()
		navigated := strings.Contains(msg, "navigated") || strings.Contains(msg, "context was destroyed") || strings.Contains(msg, "Cannot find context")
		if !navigated || time.Now().After(deadline) {
			body, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
			tb.t.Fatalf("wait for %s (%s): %v\npage text:\n%s", what, expr, err, body)
		}
		time.Sleep(20 * time.Millisecond) // let the new page's document exist
	}
}

// click clicks, with the mouse, the visible element the selector finds.
// When the page removed that element between the query and the click
// (nothing was clicked then), it queries again.
func (tb *tab) click(what, sel string) {
	tb.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := chromedp.Do(tb.ctx, chromedp.Click(chromedp.CSS(sel))) // Click waits until it is visible
		if err == nil {
			return
		}
		if !nodeGone(err) || time.Now().After(deadline) {
			tb.t.Fatalf("%s: click %s: %v", what, sel, err)
		}
	}
}

// nodeGone reports whether err says that the node an action was about to
// use left the document.
func nodeGone(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Could not find node with given id") || strings.Contains(msg, "No node with given id found") ||
		strings.Contains(msg, "Node is detached") || errors.Is(err, chromedp.ErrInvalidDimensions)
}

// leaving marks the page shown now, so that waitPage tells the next page
// from it.
func (tb *tab) leaving() {
	tb.t.Helper()
	eval[bool](tb, `window.lexigramLeft = true`)
}

// waitPage waits until the browser shows a page loaded after leaving
// was called that has an element matching marker.
func (tb *tab) waitPage(what, marker string) {
	tb.t.Helper()
	tb.waitFor(what, fmt.Sprintf(`window.lexigramLeft === undefined && document.readyState !== "loading" && document.querySelector(%s) !== null`, jsString(marker)))
}

// clickTo clicks what leads to another page (a link, a form's button)
// and waits for that page, the one with an element matching marker.
func (tb *tab) clickTo(what, sel, marker string) {
	tb.t.Helper()
	tb.leaving()
	tb.click(what, sel)
	tb.waitPage(what, marker)
}

// submitTo submits the form of the element sel and waits for the page
// it leads to, the one with an element matching marker.
func (tb *tab) submitTo(what, sel, marker string) {
	tb.t.Helper()
	tb.leaving()
	tb.do(what, chromedp.Submit(chromedp.CSS(sel)))
	tb.waitPage(what, marker)
}

// errors are the console's error messages and exceptions.
func (tb *tab) errors() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var out []string
	for _, m := range tb.console {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			out = append(out, m.String())
		}
	}
	return out
}

// screen checks that the page shows something and saved no console
// error, and saves a screenshot as a test artifact.
func (tb *tab) screen(name string) {
	tb.t.Helper()
	if n := eval[int](tb, "document.querySelector('main') ? document.querySelector('main').innerText.trim().length : 0"); n < 20 {
		tb.t.Fatalf("screen %s: the page's main part has %d characters of text: blank", name, n)
	}
	shot, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := notBlank(shot); err != nil {
		tb.t.Fatalf("screen %s: %v", name, err)
	}
	dir := os.Getenv("LEXIGRAM_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "lexigram-artifacts")
	}
	dir = filepath.Join(dir, "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	file := filepath.Join(dir, name+".png")
	if err := os.WriteFile(file, shot, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("screenshot of %s: %s", name, file)
	if errs := tb.errors(); len(errs) > 0 {
		tb.t.Fatalf("screen %s: console errors: %q", name, errs)
	}
}

// notBlank reports an error for a screenshot of one colour.
func notBlank(shot []byte) error {
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		return fmt.Errorf("decode the screenshot: %w", err)
	}
	b := img.Bounds()
	first := img.At(b.Min.X, b.Min.Y)
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			if img.At(x, y) != first {
				return nil
			}
		}
	}
	return errors.New("the screenshot is one colour: blank")
}
