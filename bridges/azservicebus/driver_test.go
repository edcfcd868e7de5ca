package azservicebus

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/bridges"
)

const testConn = "Endpoint=sb://lx-test.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=dGhlLXNlY3JldC1rZXk="

// The driver is registered as "azservicebus", reads its settings, and
// refuses bad ones with an error that names the setting, its value and
// the fix, never the key.
func TestDriverSettings(t *testing.T) {
	if !slices.Contains(bridges.Brokers(), "azservicebus") {
		t.Fatalf("brokers %v: azservicebus is not registered", bridges.Brokers())
	}
	o, err := subscriberSettings(bridges.Settings{"connection_string": testConn, "topic": "t", "subscription": "s", "sessions": "true",
		"prefetch": "50", "max_sessions": "4", "session_idle": "250ms", "lock_renew": "10m"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.Sessions || o.Prefetch != 50 || o.MaxSessions != 4 || o.SessionIdle != 250*time.Millisecond || o.LockRenewal != 10*time.Minute || o.Topic != "t" || o.Subscription != "s" {
		t.Fatalf("parsed %+v", o)
	}
	if o, err := subscriberSettings(bridges.Settings{"queue": "q", "lock_renew": "off"}); err != nil || o.LockRenewal >= 0 {
		t.Fatalf("lock_renew off: %+v, %v", o, err)
	}
	bad := []struct {
		s    bridges.Settings
		want string
	}{
		{bridges.Settings{"queue": "q", "sesions": "true"}, "sesions"},
		{bridges.Settings{"queue": "q", "sessions": "yes please"}, "sessions \"yes please\": use true or false"},
		{bridges.Settings{"queue": "q", "prefetch": "0"}, "prefetch \"0\": use a whole number from 1 to 5000"},
		{bridges.Settings{"queue": "q", "max_sessions": "many"}, "max_sessions"},
		{bridges.Settings{"queue": "q", "session_idle": "-1s"}, "session_idle \"-1s\""},
		{bridges.Settings{"queue": "q", "lock_renew": "forever"}, "lock_renew \"forever\""},
	}
	for _, c := range bad {
		c.s["connection_string"] = testConn
		_, err := bridges.NewSubscriber(t.Context(), "azservicebus", c.s)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "dGhlLXNlY3JldC1rZXk=") {
			t.Errorf("settings %v: %v, want an error with %q and no key", c.s, err, c.want)
		}
	}
	entities := []struct {
		s    bridges.Settings
		want string
	}{
		{bridges.Settings{}, "set queue, or topic and subscription"},
		{bridges.Settings{"queue": "q", "topic": "t"}, "both set"},
		{bridges.Settings{"topic": "t"}, "without a subscription"},
		{bridges.Settings{"queue": "q", "subscription": "s"}, "subscriptions belong to topics"},
		{bridges.Settings{"queue": "q"}, ""},
	}
	for _, c := range entities {
		c.s["connection_string"] = testConn
		s, err := bridges.NewSubscriber(t.Context(), "azservicebus", c.s)
		if c.want == "" {
			if err != nil {
				t.Errorf("settings %v: %v", c.s, err)
			} else {
				_ = s.Close()
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("settings %v: %v, want %q", c.s, err, c.want)
		}
	}
	if _, err := bridges.NewPublisher(t.Context(), "azservicebus", bridges.Settings{"connection_string": testConn}); err == nil || !strings.Contains(err.Error(), "set queue or topic") {
		t.Errorf("a publisher without an entity: %v", err)
	}
	if _, err := bridges.NewPublisher(t.Context(), "azservicebus", bridges.Settings{"queue": "q"}); err == nil || !strings.Contains(err.Error(), "connection_string") {
		t.Errorf("a publisher without a connection string: %v", err)
	}
	// A well-formed connection string makes a publisher without I/O (the
	// SDK connects on first use) whose errors name the namespace only.
	p, err := bridges.NewPublisher(t.Context(), "azservicebus", bridges.Settings{"connection_string": testConn, "topic": "t", "sessions": "true"})
	if err != nil {
		t.Fatal(err)
	}
	ap := p.(*Publisher)
	if !ap.sessions || ap.w.String() != `azservicebus topic "t" on lx-test.servicebus.windows.net` || ap.CloudEventsPrefix() != "cloudEvents_" {
		t.Fatalf("publisher %+v, named %s", ap, ap.w)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRenewDelay(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		until time.Time
		want  time.Duration
	}{
		{now.Add(60 * time.Second), 30 * time.Second},
		{now.Add(10 * time.Millisecond), minRenewDelay},
		{now.Add(-time.Second), unknownRenewDelay},
		{time.Time{}, unknownRenewDelay},
	} {
		if got := renewDelay(now, c.until); got != c.want {
			t.Errorf("lock until %v: renew in %v, want %v", c.until.Sub(now), got, c.want)
		}
	}
}
