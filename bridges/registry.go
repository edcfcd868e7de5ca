package bridges

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/lexigram/events/platform"
)

// Settings are a bridge's broker settings as the configuration gives them
// (url, exchange, topic, ...). Each adapter documents its keys. Values may
// hold credentials: adapters never put them in errors or logs.
type Settings map[string]string

// Driver opens publishers and subscribers of one broker from settings.
// Either function may be nil when the adapter moves messages one way only.
type Driver struct {
	NewPublisher  func(ctx context.Context, s Settings) (Publisher, error)
	NewSubscriber func(ctx context.Context, s Settings) (Subscriber, error)
}

var (
	driversMu sync.RWMutex
	drivers   = map[string]Driver{}
)

// Register makes a broker available under name (as in the configuration's
// broker field). Adapters call it from an init function, as database/sql
// drivers do, so a program links only the brokers it imports. It panics
// when name is taken or the driver has neither function: both are
// programming errors.
func Register(name string, d Driver) {
	driversMu.Lock()
	defer driversMu.Unlock()
	if d.NewPublisher == nil && d.NewSubscriber == nil {
		panic("bridges: Register " + name + ": the driver has neither NewPublisher nor NewSubscriber")
	}
	if _, dup := drivers[name]; dup {
		panic("bridges: Register called twice for broker " + name)
	}
	drivers[name] = d
}

// Brokers lists the registered broker names, sorted.
func Brokers() []string {
	driversMu.RLock()
	defer driversMu.RUnlock()
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func driver(broker, direction string) (Driver, error) {
	driversMu.RLock()
	d, ok := drivers[broker]
	driversMu.RUnlock()
	if !ok {
		known := Brokers()
		return Driver{}, platform.Errorf(platform.CodeInvalidArgument,
			"broker %q is not registered: use one of [%s], and import its package (e.g. _ \"github.com/lexigram/events/bridges/%s\") in the program", broker, strings.Join(known, ", "), broker)
	}
	if (direction == "publish" && d.NewPublisher == nil) || (direction == "subscribe" && d.NewSubscriber == nil) {
		return Driver{}, platform.Errorf(platform.CodeInvalidArgument, "broker %q cannot %s: choose the other direction for this bridge", broker, direction)
	}
	return d, nil
}

// NewPublisher opens a publisher of the named broker.
func NewPublisher(ctx context.Context, broker string, s Settings) (Publisher, error) {
	d, err := driver(broker, "publish")
	if err != nil {
		return nil, err
	}
	return d.NewPublisher(ctx, s)
}

// NewSubscriber opens a subscriber of the named broker.
func NewSubscriber(ctx context.Context, broker string, s Settings) (Subscriber, error) {
	d, err := driver(broker, "subscribe")
	if err != nil {
		return nil, err
	}
	return d.NewSubscriber(ctx, s)
}

// Check reports settings an adapter does not know, so a typo in the
// configuration is an error rather than a default silently used.
func (s Settings) Check(broker string, known ...string) error {
	var bad []string
	for k := range s {
		if !slices.Contains(known, k) {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return platform.Errorf(platform.CodeInvalidArgument, "%s settings: unknown key(s) %s: use only %s", broker, strings.Join(bad, ", "), strings.Join(known, ", "))
}
