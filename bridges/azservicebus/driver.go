package azservicebus

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

// settingKeys are the driver's settings; both directions take them all
// and use those that concern them.
var settingKeys = []string{"connection_string", "queue", "topic", "subscription", "sessions", "prefetch", "max_sessions", "session_idle", "lock_renew"}

func init() {
	bridges.Register("azservicebus", bridges.Driver{
		NewPublisher: func(_ context.Context, s bridges.Settings) (bridges.Publisher, error) {
			if err := s.Check("azservicebus", settingKeys...); err != nil {
				return nil, err
			}
			sessions, err := boolSetting(s, "sessions")
			if err != nil {
				return nil, err
			}
			return NewPublisher(PublisherOptions{ConnectionString: s["connection_string"], Queue: s["queue"], Topic: s["topic"], Sessions: sessions})
		},
		NewSubscriber: func(_ context.Context, s bridges.Settings) (bridges.Subscriber, error) {
			opts, err := subscriberSettings(s)
			if err != nil {
				return nil, err
			}
			return NewSubscriber(opts)
		},
	})
}

func subscriberSettings(s bridges.Settings) (SubscriberOptions, error) {
	o := SubscriberOptions{ConnectionString: s["connection_string"], Queue: s["queue"], Topic: s["topic"], Subscription: s["subscription"]}
	if err := s.Check("azservicebus", settingKeys...); err != nil {
		return o, err
	}
	var err error
	if o.Sessions, err = boolSetting(s, "sessions"); err != nil {
		return o, err
	}
	if o.Prefetch, err = intSetting(s, "prefetch", 5000); err != nil {
		return o, err
	}
	if o.MaxSessions, err = intSetting(s, "max_sessions", 1000); err != nil {
		return o, err
	}
	if v := s["session_idle"]; v != "" {
		if o.SessionIdle, err = time.ParseDuration(v); err != nil || o.SessionIdle <= 0 {
			return o, platform.Errorf(platform.CodeInvalidArgument, "azservicebus settings: session_idle %q: use a positive duration such as \"1s\"", v)
		}
	}
	if v := s["lock_renew"]; v != "" {
		switch strings.ToLower(v) {
		case "0", "off", "false":
			o.LockRenewal = -1
		default:
			if o.LockRenewal, err = time.ParseDuration(v); err != nil || o.LockRenewal <= 0 {
				return o, platform.Errorf(platform.CodeInvalidArgument, "azservicebus settings: lock_renew %q: use how long a held message's lock is renewed, such as \"1h\", or \"off\"", v)
			}
		}
	}
	return o, nil
}

func boolSetting(s bridges.Settings, key string) (bool, error) {
	v := s[key]
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, platform.Errorf(platform.CodeInvalidArgument, "azservicebus settings: %s %q: use true or false", key, v)
	}
	return b, nil
}

func intSetting(s bridges.Settings, key string, most int) (int, error) {
	v := s[key]
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		return 0, platform.Errorf(platform.CodeInvalidArgument, "azservicebus settings: %s %q: use a whole number from 1 to %d", key, v, most)
	}
	return n, nil
}
