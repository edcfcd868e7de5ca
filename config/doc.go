// Package config is the one configuration of a lexigram process: how to
// reach NATS (or run it embedded), the event store stream, snapshots,
// logging, the health and metrics listener, and the bridges to run.
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
// # Bridges
//
// The bridges section is a list, one item per bridge, run by `lexigram
// bridge` on its own or inside `lexigram serve` (examples/bridges/ has one
// file per broker):
//
//	bridges:
//	  - name: orders-to-rabbitmq     # consumer, metrics, dead letters
//	    direction: outbound          # or inbound
//	    broker: rabbitmq             # the adapter's registered name
//	    aggregate_types: [order]     # outbound from the event store
//	    format: cloudevents-binary
//	    workers: 4
//	    settings:                    # given to the adapter as they are
//	      url: amqp://guest:guest@127.0.0.1:5672/
//	      exchange: orders
//
// [Bridge] lists the keys; runner options left out take the runner's
// defaults. A key that is not a bridge setting is an error naming the
// bridge ("bridges[0](orders-to-rabbitmq).exchange"), as are misspelt
// settings, which the adapter refuses when the bridge starts. Settings
// values may be strings, numbers, booleans or lists (joined with commas);
// a nested map gives dotted keys. The list has no environment variables:
// LEXIGRAM_BRIDGES* is an error that says to use the file.
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
// "[redacted]", so a Config can be logged as it is. Bridge settings are
// shown with the userinfo of URLs hidden, and whole values hidden when the
// key names a secret (password, secret(s), token, key, credentials,
// connection, auth, ... but not routing_key or binding_key) or the value
// looks like a connection string with one (password=, key=, token=, ...).
package config
