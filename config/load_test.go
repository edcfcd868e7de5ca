package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// cleanEnv removes any LEXIGRAM_* variable the test process inherited, so
// tests see only what they set.
func cleanEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix) {
			t.Setenv(name, "") // restores the variable after the test
			os.Unsetenv(name)
		}
	}
}

func writeYAML(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lexigram.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoad(t *testing.T, path string) Config {
	t.Helper()
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}
	return c
}

// fieldErrors returns every *FieldError in err's tree.
func fieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

func TestDefault(t *testing.T) {
	c := Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"nats.urls", len(c.NATS.URLs), 0},
		{"nats.name", c.NATS.Name, "lexigram"},
		{"nats.connect_timeout", c.NATS.ConnectTimeout, 5 * time.Second},
		{"nats.embedded.host", c.NATS.EmbeddedServer.Host, "127.0.0.1"},
		{"nats.embedded.port", c.NATS.EmbeddedServer.Port, 0},
		{"nats.embedded.data_dir", c.NATS.EmbeddedServer.DataDir, "./data"},
		{"nats.embedded.fsync_interval", c.NATS.EmbeddedServer.FsyncInterval, time.Duration(0)},
		{"nats.embedded.dont_listen", c.NATS.EmbeddedServer.DontListen, false},
		{"store.stream", c.Store.Stream, "EVENTS"},
		{"store.subject_prefix", c.Store.SubjectPrefix, "events"},
		{"store.replicas", c.Store.Replicas, 1},
		{"store.storage", c.Store.Storage, "file"},
		{"store.max_age", c.Store.MaxAge, time.Duration(0)},
		{"store.max_bytes", c.Store.MaxBytes, int64(0)},
		{"store.duplicate_window", c.Store.DuplicateWindow, 2 * time.Minute},
		{"store.codec", c.Store.Codec, "msgpack"},
		{"store.require_durability", c.Store.RequireDurability, "any"},
		{"snapshots.bucket", c.Snapshots.Bucket, "lexigram_snapshots"},
		{"snapshots.every_events", c.Snapshots.EveryEvents, 100},
		{"snapshots.interval", c.Snapshots.Interval, time.Duration(0)},
		{"snapshots.checkpoint_bucket", c.Snapshots.CheckpointBucket, "lexigram_checkpoints"},
		{"logging.level", c.Logging.Level, "info"},
		{"logging.format", c.Logging.Format, "text"},
		{"http.addr", c.HTTP.Addr, "127.0.0.1:8080"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if !c.NATS.Embedded() {
		t.Error("default NATS.Embedded() = false, want true")
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

func TestLoadWithoutFileOrEnvIsDefault(t *testing.T) {
	cleanEnv(t)
	if got := mustLoad(t, ""); !reflect.DeepEqual(got, Default()) {
		t.Errorf("Load(\"\") = %v\nwant %v", got, Default())
	}
}

func TestLoadYAMLOverrides(t *testing.T) {
	cleanEnv(t)
	path := writeYAML(t, `
nats:
  urls:
    - nats://n1:4222
    - tls://n2:4443
  creds_file: /etc/app.creds
  tls:
    ca_file: /etc/ca.pem
    insecure_skip_verify: true
  connect_timeout: 750ms
  embedded:
    port: 4333
    dont_listen: true
store:
  stream: ORDERS
  replicas: 3
  storage: memory
  max_age: 720h
  max_bytes: 1073741824
  duplicate_window: 30s
  codec: json
snapshots:
  every_events: 0
  interval: 1m30s
logging:
  level: debug
  format: json
http:
  addr: ":9090"
`)
	c := mustLoad(t, path)

	want := Default()
	want.NATS.URLs = []string{"nats://n1:4222", "tls://n2:4443"}
	want.NATS.CredsFile = "/etc/app.creds"
	want.NATS.TLS.CAFile = "/etc/ca.pem"
	want.NATS.TLS.InsecureSkipVerify = true
	want.NATS.ConnectTimeout = 750 * time.Millisecond
	want.NATS.EmbeddedServer.Port = 4333
	want.NATS.EmbeddedServer.DontListen = true
	want.Store = Store{
		Stream: "ORDERS", SubjectPrefix: "events", Replicas: 3, Storage: "memory",
		MaxAge: 720 * time.Hour, MaxBytes: 1 << 30, DuplicateWindow: 30 * time.Second, Codec: "json", GroupCommit: "auto",
		RequireDurability: "any", ScrubInterval: time.Hour,
	}
	want.Snapshots.EveryEvents = 0
	want.Snapshots.Interval = 90 * time.Second
	want.Logging = Logging{Level: "debug", Format: "json"}
	want.HTTP.Addr = ":9090"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load =\n%v\nwant\n%v", c, want)
	}
	if c.NATS.Embedded() {
		t.Error("NATS.Embedded() = true with URLs set")
	}
}

func TestLoadEmptyKeysKeepDefaults(t *testing.T) {
	cleanEnv(t)
	c := mustLoad(t, writeYAML(t, "nats:\n  tls: {}\nstore:\n  stream:\nsnapshots:\n"))
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load = %v, want defaults", c)
	}
}

func TestEnvOverridesYAML(t *testing.T) {
	cleanEnv(t)
	path := writeYAML(t, `
nats:
  urls: [nats://from-file:4222]
  user: file-user
  password: file-password
store:
  replicas: 3
  max_age: 1h
logging:
  level: debug
`)
	t.Setenv("LEXIGRAM_NATS_URLS", " nats://a:4222 , nats://b:4222")
	t.Setenv("LEXIGRAM_NATS_USER", "env-user")
	t.Setenv("LEXIGRAM_STORE_REPLICAS", "5")
	t.Setenv("LEXIGRAM_STORE_MAX_AGE", "2h")
	t.Setenv("LEXIGRAM_NATS_EMBEDDED_DATA_DIR", "/var/lib/lexigram")
	t.Setenv("LEXIGRAM_NATS_TLS_INSECURE_SKIP_VERIFY", "true")
	t.Setenv("LEXIGRAM_STORE_MAX_BYTES", "-1")
	t.Setenv("LEXIGRAM_SNAPSHOTS_EVERY_EVENTS", "0")
	t.Setenv("LEXIGRAM_EXAMPLE_POSTGRES_URL", "postgres://127.0.0.1:5432/test")
	t.Setenv(ConfigFileEnv, path) // reserved: must not be an unknown setting

	c := mustLoad(t, path)
	checks := []struct {
		name      string
		got, want any
	}{
		{"nats.urls", strings.Join(c.NATS.URLs, " "), "nats://a:4222 nats://b:4222"},
		{"nats.user", c.NATS.User, "env-user"},
		{"nats.password (file only)", c.NATS.Password, "file-password"},
		{"store.replicas", c.Store.Replicas, 5},
		{"store.max_age", c.Store.MaxAge, 2 * time.Hour},
		{"nats.embedded.data_dir", c.NATS.EmbeddedServer.DataDir, "/var/lib/lexigram"},
		{"nats.tls.insecure_skip_verify", c.NATS.TLS.InsecureSkipVerify, true},
		{"store.max_bytes", c.Store.MaxBytes, int64(-1)},
		{"snapshots.every_events", c.Snapshots.EveryEvents, 0},
		{"logging.level (file only)", c.Logging.Level, "debug"},
		{"example.postgres_url", c.Example.PostgresURL, "postgres://127.0.0.1:5432/test"},
		{"example.name (default)", c.Example.Name, "orders"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestEnvEmptyURLsSelectsEmbedded(t *testing.T) {
	cleanEnv(t)
	t.Setenv("LEXIGRAM_NATS_URLS", "")
	c := mustLoad(t, writeYAML(t, "nats:\n  urls: [nats://from-file:4222]\n"))
	if !c.NATS.Embedded() {
		t.Errorf("NATS.URLs = %q, want empty: LEXIGRAM_NATS_URLS=\"\" must clear the file's list", c.NATS.URLs)
	}
}

func TestDurations(t *testing.T) {
	cleanEnv(t)
	c := mustLoad(t, writeYAML(t, `
nats:
  connect_timeout: 500ms
  embedded:
    fsync_interval: 0
store:
  duplicate_window: 2m
snapshots:
  interval: 1h15m
`))
	if c.NATS.ConnectTimeout != 500*time.Millisecond {
		t.Errorf("connect_timeout = %v, want 500ms", c.NATS.ConnectTimeout)
	}
	if c.NATS.EmbeddedServer.FsyncInterval != 0 {
		t.Errorf("fsync_interval = %v, want 0", c.NATS.EmbeddedServer.FsyncInterval)
	}
	if c.Store.DuplicateWindow != 2*time.Minute {
		t.Errorf("duplicate_window = %v, want 2m", c.Store.DuplicateWindow)
	}
	if c.Snapshots.Interval != 75*time.Minute {
		t.Errorf("interval = %v, want 1h15m", c.Snapshots.Interval)
	}

	t.Setenv("LEXIGRAM_NATS_EMBEDDED_FSYNC_INTERVAL", "250ms")
	if c := mustLoad(t, ""); c.NATS.EmbeddedServer.FsyncInterval != 250*time.Millisecond {
		t.Errorf("fsync_interval from env = %v, want 250ms", c.NATS.EmbeddedServer.FsyncInterval)
	}
}

func TestLoadRejectsBadValues(t *testing.T) {
	tests := []struct {
		name, yaml, field, problem string
	}{
		{"duration without unit", "store:\n  max_age: 60\n", "store.max_age", "has no unit"},
		{"not a duration", "store:\n  max_age: soon\n", "store.max_age", "is not a duration"},
		{"not an integer", "store:\n  replicas: three\n", "store.replicas", "is not an integer"},
		{"fraction", "store:\n  replicas: 1.5\n", "store.replicas", "is not an integer"},
		{"not a bool", "nats:\n  tls:\n    insecure_skip_verify: yes\n", "nats.tls.insecure_skip_verify", "is not true or false"},
		{"number for string", "nats:\n  token: 0x1F\n", "nats.token", "is not a string"},
		{"map for list", "nats:\n  urls: {a: 1}\n", "nats.urls.a", "is not a known setting"},
		{"numbers in list", "nats:\n  urls: [1, 2]\n", "nats.urls", "is not a list of strings"},
		{"section as value", "nats:\n  tls: on\n", "nats.tls", "is a section"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			path := writeYAML(t, tt.yaml)
			_, err := Load(path)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Load error = %v, want a *FieldError", err)
			}
			if fe.Field != tt.field || !strings.HasPrefix(fe.Problem, tt.problem) {
				t.Errorf("FieldError = %+v, want field %q and problem %q...", *fe, tt.field, tt.problem)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadRejectsBadEnvValues(t *testing.T) {
	cleanEnv(t)
	t.Setenv("LEXIGRAM_STORE_REPLICAS", "many")
	t.Setenv("LEXIGRAM_STORE_MAX_AGE", "60")
	_, err := Load("")
	got := map[string]string{}
	for _, fe := range fieldErrors(err) {
		got[fe.Field] = fe.Error()
	}
	want := map[string]string{
		"LEXIGRAM_STORE_REPLICAS": `LEXIGRAM_STORE_REPLICAS: "many" is not an integer`,
		"LEXIGRAM_STORE_MAX_AGE":  `LEXIGRAM_STORE_MAX_AGE: "60" is not a duration: use e.g. "500ms", "30s" or "2m"`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors = %q\nwant %q", got, want)
	}
}

func TestUnknownYAMLKeysAreNamed(t *testing.T) {
	cleanEnv(t)
	path := writeYAML(t, `
nats:
  tls:
    certfile: /etc/cert.pem
store:
  replica: 3
metrics:
  addr: ":9100"
`)
	_, err := Load(path)
	if err == nil {
		t.Fatal("Load accepted unknown keys")
	}
	for _, key := range []string{"nats.tls.certfile", "store.replica", "metrics.addr"} {
		if !strings.Contains(err.Error(), key+": is not a known setting") {
			t.Errorf("error %q does not name unknown key %s", err, key)
		}
	}
	if n := len(fieldErrors(err)); n != 3 {
		t.Errorf("got %d FieldErrors, want 3: %v", n, err)
	}
}

func TestUnknownEnvVarIsNamed(t *testing.T) {
	cleanEnv(t)
	t.Setenv("LEXIGRAM_STORE_REPLICA", "3")
	_, err := Load("")
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "LEXIGRAM_STORE_REPLICA" {
		t.Fatalf("Load error = %v, want a FieldError for LEXIGRAM_STORE_REPLICA", err)
	}
}

func TestMissingFileIsAnError(t *testing.T) {
	cleanEnv(t)
	path := filepath.Join(t.TempDir(), "absent.yaml")
	_, err := Load(path)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load(missing) = %v, want a not-exist error naming %s", err, path)
	}
}

func TestMalformedYAMLIsAnError(t *testing.T) {
	cleanEnv(t)
	path := writeYAML(t, "store:\n  replicas: [1\n")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Load(malformed) = %v, want an error naming %s", err, path)
	}
}

func TestLoadValidates(t *testing.T) {
	cleanEnv(t)
	_, err := Load(writeYAML(t, "store:\n  replicas: 7\n"))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Error() != "store.replicas: 7 is out of range: use 1 to 5" {
		t.Errorf("Load = %v, want the store.replicas range error", err)
	}
}

func TestEnvNamesAreUnique(t *testing.T) {
	if len(settingByEnv) != len(settings) || len(settingByKey) != len(settings) {
		t.Errorf("%d settings but %d env names and %d keys: two settings share a name",
			len(settings), len(settingByEnv), len(settingByKey))
	}
	if s := settingByEnv["LEXIGRAM_NATS_EMBEDDED_DATA_DIR"]; s.key != "nats.embedded.data_dir" {
		t.Errorf("LEXIGRAM_NATS_EMBEDDED_DATA_DIR maps to %q", s.key)
	}
}

// Every setting, and nothing else, is in the configuration table of the
// project's README, so the documentation cannot drift from the code.
func TestREADMEListsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(b), "\n## Configuration\n")
	section, _, _ = strings.Cut(section, "\n## ")
	rows := 0
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "| `") {
			rows++
		}
	}
	if rows != len(settings) {
		t.Errorf("README.md configuration table has %d rows, want %d", rows, len(settings))
	}
	for _, s := range settings {
		if !strings.Contains(section, "| `"+s.key+"` | `"+s.env+"` |") {
			t.Errorf("README.md has no row for %s / %s", s.key, s.env)
		}
	}
}

func TestGroupCommit(t *testing.T) {
	external := Default()
	external.NATS.URLs = []string{"nats://n1:4222"}
	lazy := Default()
	lazy.NATS.EmbeddedServer.FsyncInterval = time.Minute
	replicated := Default()
	replicated.Store.Replicas = 3
	memory := Default()
	memory.Store.Storage = "memory"
	forced := external
	forced.Store.GroupCommit = "on"
	off := Default()
	off.Store.GroupCommit = "off"
	tests := []struct {
		name string
		cfg  Config
		want bool
	}{
		{"auto: embedded, fsync every write", Default(), true},
		{"auto: external server", external, false},
		{"auto: lazy fsync", lazy, false},
		{"auto: replicated", replicated, false},
		{"auto: memory storage", memory, false},
		{"on", forced, true},
		{"off", off, false},
	}
	for _, tt := range tests {
		if got := tt.cfg.GroupCommit(); got != tt.want {
			t.Errorf("%s: GroupCommit() = %v, want %v", tt.name, got, tt.want)
		}
	}
	bad := Default()
	bad.Store.GroupCommit = "yes"
	var fe *FieldError
	if err := bad.Validate(); !errors.As(err, &fe) || fe.Field != "store.group_commit" {
		t.Fatalf("Validate with group_commit \"yes\" = %v, want a FieldError on store.group_commit", err)
	}
}

func TestEventsAndProjectionsValidate(t *testing.T) {
	bad := Default()
	bad.Events.MaxConcurrentHandlers = 0
	bad.Projections.BatchSize = -1
	bad.Projections.LeaseTTL = 100 * time.Millisecond
	err := bad.Validate()
	for _, field := range []string{"events.max_concurrent_handlers", "projections.batch_size", "projections.lease_ttl"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Validate = %v, want a problem with %s", err, field)
		}
	}
}
