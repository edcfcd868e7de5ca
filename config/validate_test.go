package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidateNamesEachField(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		field  string
		want   string // the whole message if it starts with the field, else a part of it
	}{
		{"replicas", func(c *Config) { c.Store.Replicas = 7 }, "store.replicas", "store.replicas: 7 is out of range: use 1 to 5"},
		{"replicas zero", func(c *Config) { c.Store.Replicas = 0 }, "store.replicas", "out of range"},
		{"cert without key", func(c *Config) { c.NATS.TLS.CertFile = "c.pem" }, "nats.tls.cert_file",
			"nats.tls.cert_file: set but nats.tls.key_file is empty: set both or neither"},
		{"key without cert", func(c *Config) { c.NATS.TLS.KeyFile = "k.pem" }, "nats.tls.key_file", "set but nats.tls.cert_file is empty"},
		{"storage", func(c *Config) { c.Store.Storage = "ssd" }, "store.storage",
			`store.storage: "ssd" is not a storage type: use "file" or "memory"`},
		{"subject prefix", func(c *Config) { c.Store.SubjectPrefix = "ev.>" }, "store.subject_prefix",
			`store.subject_prefix: "ev.>" is not a valid subject token: use letters, digits, '-' and '_'`},
		{"empty subject prefix", func(c *Config) { c.Store.SubjectPrefix = "" }, "store.subject_prefix", "not a valid subject token"},
		{"stream space", func(c *Config) { c.Store.Stream = "MY EVENTS" }, "store.stream", `"MY EVENTS" is not a valid stream name`},
		{"stream dot", func(c *Config) { c.Store.Stream = "EV.X" }, "store.stream", "not a valid stream name"},
		{"stream wildcard", func(c *Config) { c.Store.Stream = "EV*" }, "store.stream", "not a valid stream name"},
		{"stream gt", func(c *Config) { c.Store.Stream = "EV>" }, "store.stream", "not a valid stream name"},
		{"stream slash", func(c *Config) { c.Store.Stream = "a/b" }, "store.stream", "not a valid stream name"},
		{"stream backslash", func(c *Config) { c.Store.Stream = `a\b` }, "store.stream", "not a valid stream name"},
		{"stream control", func(c *Config) { c.Store.Stream = "a\x00b" }, "store.stream", "not a valid stream name"},
		{"stream empty", func(c *Config) { c.Store.Stream = "" }, "store.stream", "is empty"},
		{"max age", func(c *Config) { c.Store.MaxAge = -time.Second }, "store.max_age", `"-1s" is negative`},
		{"max bytes", func(c *Config) { c.Store.MaxBytes = -2 }, "store.max_bytes", "-2 is out of range"},
		{"duplicate window negative", func(c *Config) { c.Store.DuplicateWindow = -time.Second }, "store.duplicate_window", "is negative"},
		{"duplicate window over max age", func(c *Config) { c.Store.MaxAge = time.Minute }, "store.duplicate_window",
			`store.duplicate_window: "2m0s" is longer than store.max_age "1m0s": use at most that`},
		{"codec", func(c *Config) { c.Store.Codec = "protobuf" }, "store.codec", `"protobuf" is not a codec`},
		{"example name", func(c *Config) { c.Example.Name = "shop" }, "example.name", `example.name: "shop" is not an example domain: use "orders" (the default) or "none"`},
		{"example postgres url", func(c *Config) { c.Example.PostgresURL = "mysql://u:secret@db/x" }, "example.postgres_url", "is not a PostgreSQL URL"},
		{"example postgres without the example", func(c *Config) { c.Example.Name, c.Example.PostgresURL = "none", "postgres://db/x" }, "example.postgres_url", `example.name is "none"`},
		{"example postgres schema", func(c *Config) { c.Example.PostgresURL, c.Example.PostgresSchema = "postgres://db/x", "my schema" }, "example.postgres_schema", "is not a schema name"},
		{"require durability", func(c *Config) { c.Store.RequireDurability = "durable" }, "store.require_durability",
			`store.require_durability: "durable" is not a durability level: use "any", "replicated" (survives losing one server) or "fsync" (survives losing power everywhere)`},
		{"require durability empty", func(c *Config) { c.Store.RequireDurability = "" }, "store.require_durability", "is not a durability level"},
		{"scrub rate", func(c *Config) { c.Store.ScrubRate = -1 }, "store.scrub_rate", "store.scrub_rate: -1 is negative: use 0 to leave the background audit off, or events per second, e.g. 500"},
		{"scrub interval", func(c *Config) { c.Store.ScrubInterval = 0 }, "store.scrub_interval", `store.scrub_interval: "0s" is not positive: use e.g. "1h"`},
		{"log level", func(c *Config) { c.Logging.Level = "verbose" }, "logging.level",
			`logging.level: "verbose" is not a log level: use "debug", "info", "warn" or "error"`},
		{"log format", func(c *Config) { c.Logging.Format = "xml" }, "logging.format", "is not a log format"},
		{"every events", func(c *Config) { c.Snapshots.EveryEvents = -1 }, "snapshots.every_events",
			"snapshots.every_events: -1 is negative: use 0 to disable count-based snapshots"},
		{"interval", func(c *Config) { c.Snapshots.Interval = -time.Minute }, "snapshots.interval", "is negative"},
		{"bucket", func(c *Config) { c.Snapshots.Bucket = "snap.shots" }, "snapshots.bucket", "not a valid bucket name"},
		{"checkpoint bucket", func(c *Config) { c.Snapshots.CheckpointBucket = "" }, "snapshots.checkpoint_bucket", "not a valid bucket name"},
		{"same buckets", func(c *Config) { c.Snapshots.CheckpointBucket = c.Snapshots.Bucket }, "snapshots.checkpoint_bucket", "is also snapshots.bucket"},
		{"http addr no port", func(c *Config) { c.HTTP.Addr = "localhost" }, "http.addr",
			`http.addr: "localhost" is not host:port: use e.g. "127.0.0.1:8080" or ":8080"`},
		{"http addr bad port", func(c *Config) { c.HTTP.Addr = "localhost:99999" }, "http.addr", "is not host:port"},
		{"http addr empty", func(c *Config) { c.HTTP.Addr = "" }, "http.addr", "is not host:port"},
		{"url scheme", func(c *Config) { c.NATS.URLs = []string{"nats://ok:4222", "http://h:4222"} }, "nats.urls[1]",
			`nats.urls[1]: "http://h:4222" does not start with nats://, tls://, ws:// or wss://`},
		{"url no scheme", func(c *Config) { c.NATS.URLs = []string{"h:4222"} }, "nats.urls[0]", "does not start with"},
		{"url no host", func(c *Config) { c.NATS.URLs = []string{"nats://:4222"} }, "nats.urls[0]", "has no host"},
		{"url unparsable", func(c *Config) { c.NATS.URLs = []string{"nats://h:port"} }, "nats.urls[0]", "is not a URL"},
		{"url mixing websocket", func(c *Config) { c.NATS.URLs = []string{"wss://a:443", "nats://b:4222"} }, "nats.urls", "mixes ws://"},
		{"user without password", func(c *Config) { c.NATS.User = "bob" }, "nats.user",
			"nats.user: set but nats.password is empty: set both or neither"},
		{"password without user", func(c *Config) { c.NATS.Password = "pw" }, "nats.password", "set but nats.user is empty"},
		{"two auth methods", func(c *Config) { c.NATS.CredsFile = "a.creds"; c.NATS.Token = "t" }, "nats.token",
			"nats.token: set together with nats.creds_file: use one way to authenticate"},
		{"connect timeout", func(c *Config) { c.NATS.ConnectTimeout = 0 }, "nats.connect_timeout", "is not positive"},
		{"embedded host", func(c *Config) { c.NATS.EmbeddedServer.Host = "" }, "nats.embedded.host", "is empty"},
		{"embedded port high", func(c *Config) { c.NATS.EmbeddedServer.Port = 70000 }, "nats.embedded.port", "70000 is out of range"},
		{"embedded port low", func(c *Config) { c.NATS.EmbeddedServer.Port = -2 }, "nats.embedded.port", "-2 is out of range"},
		{"embedded data dir", func(c *Config) { c.NATS.EmbeddedServer.DataDir = "" }, "nats.embedded.data_dir", "is empty"},
		{"fsync interval", func(c *Config) { c.NATS.EmbeddedServer.FsyncInterval = -time.Second }, "nats.embedded.fsync_interval", "is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c)
			err := c.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *FieldError", err)
			}
			if all := fieldErrors(err); len(all) != 1 {
				t.Errorf("Validate() reported %d problems, want 1: %v", len(all), err)
			}
			if fe.Field != tt.field {
				t.Errorf("Field = %q, want %q (error %q)", fe.Field, tt.field, fe)
			}
			if strings.HasPrefix(tt.want, tt.field+":") {
				if fe.Error() != tt.want {
					t.Errorf("Error() = %q\nwant      %q", fe.Error(), tt.want)
				}
			} else if !strings.Contains(fe.Error(), tt.want) {
				t.Errorf("Error() = %q, want it to contain %q", fe.Error(), tt.want)
			}
		})
	}
}

func TestValidateAcceptsEdgeValues(t *testing.T) {
	c := Default()
	c.NATS.URLs = []string{"nats://a:4222", "tls://b:4443", "nats://u:p@c"}
	c.NATS.User, c.NATS.Password = "bob", "pw"
	c.NATS.TLS.CertFile, c.NATS.TLS.KeyFile = "c.pem", "k.pem"
	c.NATS.EmbeddedServer.Port = -1
	c.Store.Replicas = 5
	c.Store.MaxBytes = -1
	c.Store.MaxAge = 2 * time.Minute
	c.Store.DuplicateWindow = 0
	c.Store.Storage = "memory"
	c.Store.Stream = "ORDERS_v2-x"
	c.Logging.Level, c.Logging.Format = "WARN", "JSON"
	c.HTTP.Addr = ":0"
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
}

func TestValidateJoinsAllProblems(t *testing.T) {
	c := Default()
	c.Store.Replicas = 9
	c.Store.Storage = "ssd"
	c.Logging.Level = "loud"
	c.HTTP.Addr = "nowhere"
	c.NATS.User = "bob"
	err := c.Validate()

	want := []string{"nats.user", "store.replicas", "store.storage", "logging.level", "http.addr"}
	var got []string
	for _, fe := range fieldErrors(err) {
		got = append(got, fe.Field)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("fields = %v, want %v in declaration order", got, want)
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != len(want) {
		t.Errorf("Error() has %d lines, want one per problem:\n%v", len(lines), err)
	}
}

// store.require_durability comes from the file and from
// LEXIGRAM_STORE_REQUIRE_DURABILITY, which wins; a bad value names the
// variable.
func TestRequireDurabilityLoads(t *testing.T) {
	cleanEnv(t)
	path := writeYAML(t, "store:\n  require_durability: replicated\n")
	if c := mustLoad(t, path); c.Store.RequireDurability != "replicated" {
		t.Fatalf("from the file: %q", c.Store.RequireDurability)
	}
	t.Setenv("LEXIGRAM_STORE_REQUIRE_DURABILITY", "fsync")
	if c := mustLoad(t, path); c.Store.RequireDurability != "fsync" {
		t.Fatalf("from the environment: %q", c.Store.RequireDurability)
	}
	t.Setenv("LEXIGRAM_STORE_REQUIRE_DURABILITY", "always")
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), `"always" is not a durability level`) {
		t.Fatalf("a bad level from the environment: %v", err)
	}
}
