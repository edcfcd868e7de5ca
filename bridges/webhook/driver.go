package webhook

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

// Keys of an endpoint's settings ("<name>.<key>"); those after "secrets"
// may also be given without a name, as every endpoint's default.
var endpointKeys = []string{"url", "secrets", "event_types", "aggregate_types",
	"timeout", "max_concurrency", "max_attempts", "retry_min", "retry_max", "breaker_failures", "breaker_open_for"}

const firstDefaultKey = 4 // endpointKeys[4:] may be defaults

func init() {
	bridges.Register("webhook", bridges.Driver{
		NewPublisher: func(_ context.Context, s bridges.Settings) (bridges.Publisher, error) {
			opts, err := OptionsFromSettings(s)
			if err != nil {
				return nil, err
			}
			return New(opts)
		},
	})
}

// OptionsFromSettings reads the settings of the registered driver (see
// the package documentation) into Options.
func OptionsFromSettings(s bridges.Settings) (Options, error) {
	var opts Options
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, platform.Errorf(platform.CodeInvalidArgument, "webhook settings: "+format, args...))
	}
	names := list(s["endpoints"])
	if len(names) == 0 {
		bad("endpoints is empty: list the endpoint names, e.g. endpoints: \"billing,crm\", then give billing.url, billing.secrets, ...")
	}
	listed := map[string]bool{}
	for _, n := range names {
		if err := validName(n); err != nil {
			errs = append(errs, err)
		}
		if listed[n] {
			bad("endpoints lists %q twice: list each once", n)
		}
		listed[n] = true
	}
	var unknown []string
	for k := range s {
		if k == "endpoints" || k == "allow_private" || slices.Contains(endpointKeys[firstDefaultKey:], k) {
			continue
		}
		name, key, ok := strings.Cut(k, ".")
		if !ok || !listed[name] || !slices.Contains(endpointKeys, key) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		bad("unknown key(s) %s: use endpoints, allow_private, <name>.<key> for a listed endpoint name with key one of %s, or one of %s without a name as every endpoint's default",
			strings.Join(unknown, ", "), strings.Join(endpointKeys, ", "), strings.Join(endpointKeys[firstDefaultKey:], ", "))
	}
	if v := s["allow_private"]; v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad("allow_private %q: use true or false", v)
		}
		opts.AllowPrivate = b
	}
	for _, n := range names {
		get := func(key string) (string, string) {
			if v, ok := s[n+"."+key]; ok {
				return v, n + "." + key
			}
			return s[key], key
		}
		e := Endpoint{Name: n, URL: s[n+".url"], Secrets: list(s[n+".secrets"]),
			EventTypes: list(s[n+".event_types"]), AggregateTypes: list(s[n+".aggregate_types"])}
		durations := []struct {
			key string
			to  *time.Duration
		}{{"timeout", &e.Timeout}, {"retry_min", &e.Retry.MinDelay}, {"retry_max", &e.Retry.MaxDelay}, {"breaker_open_for", &e.Breaker.OpenFor}}
		for _, d := range durations {
			if v, key := get(d.key); v != "" {
				x, err := time.ParseDuration(v)
				if err != nil || x <= 0 {
					bad("%s %q: use a positive duration, e.g. \"15s\"", key, v)
				}
				*d.to = x
			}
		}
		ints := []struct {
			key string
			to  *int
		}{{"max_concurrency", &e.MaxConcurrency}, {"max_attempts", &e.Retry.MaxAttempts}, {"breaker_failures", &e.Breaker.Failures}}
		for _, d := range ints {
			if v, key := get(d.key); v != "" {
				x, err := strconv.Atoi(v)
				if err != nil || x < 1 {
					bad("%s %q: use a whole number of 1 or more", key, v)
				}
				*d.to = x
			}
		}
		opts.Endpoints = append(opts.Endpoints, e)
	}
	return opts, errors.Join(errs...)
}

// list splits a settings value on commas and white space.
func list(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}
