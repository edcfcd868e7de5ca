package webhook_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/webhook"
)

// The registered driver reads several endpoints from flat settings, with
// defaults for all and values of their own, and delivers with them.
func TestSettings(t *testing.T) {
	if !slices.Contains(bridges.Brokers(), "webhook") {
		t.Fatalf("brokers %v lack webhook", bridges.Brokers())
	}
	billing := newReceiver(t, status(http.StatusServiceUnavailable))
	crm := newReceiver(t, nil)
	s1, s2, s3 := secret(t), secret(t), secret(t)
	s := bridges.Settings{
		"endpoints":            "billing, crm",
		"allow_private":        "true",
		"max_attempts":         "4",
		"retry_min":            "5ms",
		"retry_max":            "20ms",
		"billing.url":          billing.URL + "/in",
		"billing.secrets":      s1 + " " + s2,
		"billing.max_attempts": "2",
		"billing.event_types":  "order.placed,order.paid",
		"crm.url":              crm.URL + "/in",
		"crm.secrets":          s3,
		"crm.aggregate_types":  "customer",
		"crm.timeout":          "2s",
	}
	opts, err := webhook.OptionsFromSettings(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.Endpoints) != 2 || !opts.AllowPrivate {
		t.Fatalf("options %+v", opts)
	}
	b, c := opts.Endpoints[0], opts.Endpoints[1]
	if b.Name != "billing" || b.Retry.MaxAttempts != 2 || b.Retry.MinDelay != 5*time.Millisecond || len(b.Secrets) != 2 || !slices.Equal(b.EventTypes, []string{"order.placed", "order.paid"}) {
		t.Errorf("billing %+v", b)
	}
	if c.Name != "crm" || c.Retry.MaxAttempts != 4 || c.Timeout != 2*time.Second || !slices.Equal(c.AggregateTypes, []string{"customer"}) {
		t.Errorf("crm %+v", c)
	}

	pub, err := bridges.NewPublisher(t.Context(), "webhook", s)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	cust := message("e-1", "c-1", "customer.created")
	cust.Subject = "events.customer.c-1"
	err = pub.Publish(t.Context(), message("e-0", "o-1", "order.placed"), cust)
	errs := bridges.ErrorsOf(err, 2)
	if !bridges.IsRefused(errs[0]) || errs[1] != nil {
		t.Fatalf("errors %v: want the order event refused (billing answers 503), the customer event delivered", errs)
	}
	if billing.count() != 2 || crm.count() != 1 {
		t.Fatalf("requests: billing %d (want 2: its own max attempts), crm %d (want 1)", billing.count(), crm.count())
	}
	r := billing.requests()[0]
	for _, sec := range []string{s1, s2} {
		if err := verify(sec, r.Header, r.Body); err != nil {
			t.Errorf("billing's signature: %v", err)
		}
	}
}

// Settings errors name the key, the value and the fix, all at once.
func TestSettingsErrors(t *testing.T) {
	sec := secret(t)
	cases := []struct {
		s    bridges.Settings
		want []string
	}{
		{bridges.Settings{}, []string{"endpoints is empty"}},
		{bridges.Settings{"endpoints": "a", "a.url": "https://x.example/", "a.secrets": sec, "a.urll": "x", "b.url": "y", "colour": "red"},
			[]string{"unknown key(s) a.urll, b.url, colour"}},
		{bridges.Settings{"endpoints": "a", "a.url": "https://x.example/", "a.secrets": sec, "a.timeout": "soon", "max_attempts": "0", "allow_private": "maybe"},
			[]string{`a.timeout "soon"`, `max_attempts "0"`, `allow_private "maybe"`}},
		{bridges.Settings{"endpoints": "a,a.b", "a.url": "https://x.example/", "a.secrets": sec}, []string{`"a.b"`}},
		{bridges.Settings{"endpoints": "a", "a.secrets": sec}, []string{"webhook endpoint a: url is empty"}},
	}
	for _, c := range cases {
		_, err := bridges.NewPublisher(t.Context(), "webhook", c.s)
		if err == nil {
			t.Errorf("%v: no error", c.s)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: %q lacks %q", c.s, err, w)
			}
		}
		if strings.Contains(err.Error(), sec[6:]) {
			t.Errorf("the error shows a secret: %q", err)
		}
	}
}
