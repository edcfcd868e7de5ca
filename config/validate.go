package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// FieldError is one problem with one setting. Validate and Load return
// them joined; find one with errors.As(err, new(*FieldError)).
type FieldError struct {
	// Field is the setting as the user wrote it: a YAML path such as
	// "store.replicas" or "nats.urls[1]", or an environment variable.
	Field string
	// Value is the offending value as it appears in the message, strings
	// quoted. It is empty for secrets, whose values are never shown, and
	// for problems that concern no single value.
	Value string
	// Problem says what is wrong and, where it can, how to fix it.
	Problem string
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return e.Field + ": " + e.Problem
	}
	return e.Field + ": " + e.Value + " " + e.Problem
}

// problems collects FieldErrors in the order the fields are declared, so
// messages come out in a stable order.
type problems []error

func (p *problems) add(field, value, problem string) {
	*p = append(*p, &FieldError{Field: field, Value: value, Problem: problem})
}

// Validate reports every problem with c, joined with errors.Join, each a
// *FieldError naming the setting. It returns nil if c is usable.
func (c Config) Validate() error {
	var p problems
	c.NATS.validate(&p)
	c.Store.validate(&p)
	c.Snapshots.validate(&p)
	c.Events.validate(&p)
	c.Projections.validate(&p)
	c.Logging.validate(&p)
	c.HTTP.validate(&p)
	c.Encryption.validate(&p)
	c.Example.validate(&p)
	validateBridges(c.Bridges, c.Store, &p)
	return errors.Join(p...)
}

func (n NATS) validate(p *problems) {
	websocket := 0
	for i, u := range n.URLs {
		scheme, problem := checkURL(u)
		if problem != "" {
			p.add(fmt.Sprintf("nats.urls[%d]", i), strconv.Quote(redactURL(u)), problem)
		}
		if scheme == "ws" || scheme == "wss" {
			websocket++
		}
	}
	if websocket > 0 && websocket < len(n.URLs) {
		p.add("nats.urls", "", "mixes ws:// or wss:// with other URLs: the client cannot use both, list one kind")
	}

	auth := []struct {
		field string
		set   bool
	}{
		{"nats.creds_file", n.CredsFile != ""},
		{"nats.nkey_file", n.NKeyFile != ""},
		{"nats.user", n.User != "" || n.Password != ""},
		{"nats.token", n.Token != ""},
	}
	first := ""
	for _, a := range auth {
		switch {
		case !a.set:
		case first == "":
			first = a.field
		default:
			p.add(a.field, "", "set together with "+first+": use one way to authenticate")
		}
	}
	bothOrNeither(p, "nats.user", n.User, "nats.password", n.Password)
	bothOrNeither(p, "nats.tls.cert_file", n.TLS.CertFile, "nats.tls.key_file", n.TLS.KeyFile)
	if n.ConnectTimeout <= 0 {
		p.add("nats.connect_timeout", quoteDuration(n.ConnectTimeout), `is not positive: use e.g. "5s"`)
	}

	e := n.EmbeddedServer
	if e.Host == "" {
		p.add("nats.embedded.host", "", `is empty: use e.g. "127.0.0.1"`)
	}
	if e.Port < -1 || e.Port > 65535 {
		p.add("nats.embedded.port", strconv.Itoa(e.Port), "is out of range: use 0 (4222, or a free port if taken), -1 (a free port) or 1 to 65535")
	}
	if e.DataDir == "" {
		p.add("nats.embedded.data_dir", "", `is empty: use a directory, e.g. "./data"`)
	}
	if e.FsyncInterval < 0 {
		p.add("nats.embedded.fsync_interval", quoteDuration(e.FsyncInterval), "is negative: use 0 to fsync every write, or a positive interval")
	}
}

// checkURL returns the URL's scheme, and what is wrong with it if anything.
func checkURL(s string) (scheme, problem string) {
	u, err := url.Parse(s)
	if err != nil {
		// err would repeat the URL, and with it any password.
		return "", `is not a URL: use e.g. "nats://host:4222"`
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return u.Scheme, `does not start with nats://, tls://, ws:// or wss://`
	}
	if u.Hostname() == "" {
		return u.Scheme, `has no host: use e.g. "nats://host:4222"`
	}
	return u.Scheme, ""
}

func bothOrNeither(p *problems, aField, a, bField, b string) {
	switch {
	case a != "" && b == "":
		p.add(aField, "", "set but "+bField+" is empty: set both or neither")
	case a == "" && b != "":
		p.add(bField, "", "set but "+aField+" is empty: set both or neither")
	}
}

func (s Store) validate(p *problems) {
	switch {
	case s.Stream == "":
		p.add("store.stream", "", `is empty: use e.g. "EVENTS"`)
	case strings.ContainsAny(s.Stream, `.*>/\`) || strings.ContainsFunc(s.Stream, func(r rune) bool {
		return unicode.IsSpace(r) || !unicode.IsPrint(r)
	}):
		p.add("store.stream", strconv.Quote(s.Stream), `is not a valid stream name: use no spaces, '.', '*', '>', '/' or '\'`)
	}
	if !isToken(s.SubjectPrefix) {
		p.add("store.subject_prefix", strconv.Quote(s.SubjectPrefix), "is not a valid subject token: use letters, digits, '-' and '_'")
	}
	if s.Replicas < 1 || s.Replicas > 5 {
		p.add("store.replicas", strconv.Itoa(s.Replicas), "is out of range: use 1 to 5")
	}
	if s.Storage != "file" && s.Storage != "memory" {
		p.add("store.storage", strconv.Quote(s.Storage), `is not a storage type: use "file" or "memory"`)
	}
	if s.MaxAge < 0 {
		p.add("store.max_age", quoteDuration(s.MaxAge), "is negative: use 0 to keep events forever")
	}
	if s.MaxBytes < -1 {
		p.add("store.max_bytes", strconv.FormatInt(s.MaxBytes, 10), "is out of range: use 0 or -1 for unlimited, or a size in bytes")
	}
	switch {
	case s.DuplicateWindow < 0:
		p.add("store.duplicate_window", quoteDuration(s.DuplicateWindow), `is negative: use e.g. "2m"`)
	case s.MaxAge > 0 && s.DuplicateWindow > s.MaxAge:
		// JetStream refuses such a stream; say so before it does.
		p.add("store.duplicate_window", quoteDuration(s.DuplicateWindow), "is longer than store.max_age "+quoteDuration(s.MaxAge)+": use at most that")
	}
	if s.Codec != "msgpack" && s.Codec != "json" {
		p.add("store.codec", strconv.Quote(s.Codec), `is not a codec: use "msgpack" or "json"`)
	}
	if s.GroupCommit != "auto" && s.GroupCommit != "on" && s.GroupCommit != "off" {
		p.add("store.group_commit", strconv.Quote(s.GroupCommit), `is not a choice: use "auto", "on" or "off"`)
	}
	if s.RequireDurability != "any" && s.RequireDurability != "replicated" && s.RequireDurability != "fsync" {
		p.add("store.require_durability", strconv.Quote(s.RequireDurability), `is not a durability level: use "any", "replicated" (survives losing one server) or "fsync" (survives losing power everywhere)`)
	}
	if s.ScrubRate < 0 {
		p.add("store.scrub_rate", strconv.Itoa(s.ScrubRate), "is negative: use 0 to leave the background audit off, or events per second, e.g. 500")
	}
	if s.ScrubInterval <= 0 {
		p.add("store.scrub_interval", quoteDuration(s.ScrubInterval), `is not positive: use e.g. "1h"`)
	}
}

func (s Snapshots) validate(p *problems) {
	const bucketRule = "is not a valid bucket name: use letters, digits, '-' and '_'"
	if !isToken(s.Bucket) {
		p.add("snapshots.bucket", strconv.Quote(s.Bucket), bucketRule)
	}
	if !isToken(s.CheckpointBucket) {
		p.add("snapshots.checkpoint_bucket", strconv.Quote(s.CheckpointBucket), bucketRule)
	} else if s.CheckpointBucket == s.Bucket {
		p.add("snapshots.checkpoint_bucket", strconv.Quote(s.CheckpointBucket), "is also snapshots.bucket: use two buckets")
	}
	if s.EveryEvents < 0 {
		p.add("snapshots.every_events", strconv.Itoa(s.EveryEvents), "is negative: use 0 to disable count-based snapshots")
	}
	if s.Interval < 0 {
		p.add("snapshots.interval", quoteDuration(s.Interval), "is negative: use 0 to disable time-based snapshots")
	}
}

func (e Events) validate(p *problems) {
	if e.MaxConcurrentHandlers < 1 {
		p.add("events.max_concurrent_handlers", strconv.Itoa(e.MaxConcurrentHandlers), "must be at least 1: use e.g. 16")
	}
	if e.HandlerTimeout < 0 {
		p.add("events.handler_timeout", quoteDuration(e.HandlerTimeout), `is negative: use e.g. "30s", or 0 for none`)
	}
}

func (pr Projections) validate(p *problems) {
	for _, f := range []struct {
		key string
		v   int
	}{{"projections.checkpoint_interval", pr.CheckpointInterval}, {"projections.batch_size", pr.BatchSize}, {"projections.rebuild_batch_size", pr.RebuildBatchSize}} {
		if f.v < 1 {
			p.add(f.key, strconv.Itoa(f.v), "must be at least 1: use e.g. 1000")
		}
	}
	if pr.LeaseTTL < time.Second {
		p.add("projections.lease_ttl", quoteDuration(pr.LeaseTTL), `is under 1s: use e.g. "5s"`)
	}
}

// isToken reports whether s is usable both as one NATS subject token and as
// a key-value bucket name.
func isToken(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	})
}

func (l Logging) validate(p *problems) {
	if _, ok := levels[strings.ToLower(l.Level)]; !ok {
		p.add("logging.level", strconv.Quote(l.Level), `is not a log level: use "debug", "info", "warn" or "error"`)
	}
	if f := strings.ToLower(l.Format); f != "text" && f != "json" {
		p.add("logging.format", strconv.Quote(l.Format), `is not a log format: use "text" or "json"`)
	}
}

func (h HTTP) validate(p *problems) {
	_, port, err := net.SplitHostPort(h.Addr)
	if _, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil {
		p.add("http.addr", strconv.Quote(h.Addr), `is not host:port: use e.g. "127.0.0.1:8080" or ":8080"`)
	}
}

func (e Example) validate(p *problems) {
	if e.Name != ExampleOrders && e.Name != ExampleNone {
		p.add("example.name", strconv.Quote(e.Name), `is not an example domain: use "orders" (the default) or "none"`)
	}
	if e.PostgresURL == "" {
		return
	}
	if u, err := url.Parse(e.PostgresURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		p.add("example.postgres_url", strconv.Quote(redactURL(e.PostgresURL)), "is not a PostgreSQL URL: use postgres://user:password@host:5432/database")
	}
	if e.Name == ExampleNone {
		p.add("example.postgres_url", strconv.Quote(redactURL(e.PostgresURL)), `is for the example's read model, and example.name is "none": drop it, or set example.name to "orders"`)
	}
	if e.PostgresSchema == "" || strings.ContainsAny(e.PostgresSchema, " .\"\t") {
		p.add("example.postgres_schema", strconv.Quote(e.PostgresSchema), `is not a schema name: use letters, digits and '_', e.g. "public"`)
	}
}

func quoteDuration(d time.Duration) string { return strconv.Quote(d.String()) }
