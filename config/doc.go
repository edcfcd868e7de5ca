// Package config is the one configuration of a lexigram process: how to
// reach NATS (or run it embedded), the event store stream, snapshots,
// logging and the health and metrics listener.
//
// [Load] starts from the documented defaults ([Default]), applies a YAML
// file, then LEXIGRAM_* environment variables, and validates the result:
//
//	cfg, err := config.Load(os.Getenv(config.ConfigFileEnv))
//
// # YAML file
//
// Keys are snake_case and nested by section:
//
//	nats:
//	  urls: [nats://n1:4222, nats://n2:4222]
//	  creds_file: /etc/lexigram/app.creds
//	store:
//	  replicas: 3
//	  max_age: 720h
//	snapshots:
//	  every_events: 500
//
// A key that names no setting is an error naming the key, so typos are not
// silently ignored. A key with no value keeps its default. Durations use Go
// syntax ("500ms", "30s", "2m", "720h"); a bare 0 is also accepted.
//
// # Environment variables
//
// Every setting has exactly one variable: LEXIGRAM_ followed by its YAML
// path in upper case with each '.' replaced by '_':
//
//	nats.urls               LEXIGRAM_NATS_URLS
//	nats.embedded.data_dir  LEXIGRAM_NATS_EMBEDDED_DATA_DIR
//	store.replicas          LEXIGRAM_STORE_REPLICAS
//
// Names are looked up in the fixed list of settings, never split at
// underscores, so keys that contain underscores are unambiguous (the
// package's tests check that no two settings share a name). Any other
// LEXIGRAM_* variable is an error, except [ConfigFileEnv] (LEXIGRAM_CONFIG),
// which Load leaves for the caller to name the file with. Lists are
// comma-separated (LEXIGRAM_NATS_URLS=nats://n1:4222,nats://n2:4222; empty
// means no URLs, so the embedded server), booleans are true or false (or 1
// and 0), durations as in YAML. The project's README.md has the full
// table.
//
// # Errors
//
// [Config.Validate] and Load report every problem at once, joined, each a
// [*FieldError] naming the setting as the user wrote it ("store.replicas",
// "nats.urls[1]" or "LEXIGRAM_STORE_REPLICAS").
//
// # Secrets
//
// nats.password, nats.token and the userinfo of nats.urls never appear in
// error messages, and [Config.String] and [Config.LogValue] show them as
// "[redacted]", so a Config can be logged as it is.
package config
