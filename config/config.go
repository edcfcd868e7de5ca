package config

import "time"

// Config is the whole configuration of a lexigram process. Build it with
// [Default] or [Load]; the zero value is not a working configuration.
//
// The koanf tags are the keys users write in the YAML file; the environment
// variable for each is derived from them, see the package documentation.
type Config struct {
	NATS        NATS        `koanf:"nats"`
	Store       Store       `koanf:"store"`
	Snapshots   Snapshots   `koanf:"snapshots"`
	Events      Events      `koanf:"events"`
	Projections Projections `koanf:"projections"`
	Logging     Logging     `koanf:"logging"`
	HTTP        HTTP        `koanf:"http"`
	Encryption  Encryption  `koanf:"encryption"`
	Example     Example     `koanf:"example"`
	// Bridges to run (config/bridges.go): a list in the YAML file only,
	// with no environment variables.
	Bridges []Bridge `koanf:"bridges"`
}

// NATS says how to reach NATS: an external server (URLs set) or a server
// embedded in this process (URLs empty).
type NATS struct {
	// URLs of the servers to connect to. Empty runs the embedded server.
	URLs []string `koanf:"urls" redact:"userinfo"`
	// At most one way to authenticate may be set: CredsFile, NKeyFile,
	// User with Password, or Token.
	CredsFile string `koanf:"creds_file"`
	NKeyFile  string `koanf:"nkey_file"`
	User      string `koanf:"user"`
	Password  string `koanf:"password" redact:"all"`
	Token     string `koanf:"token" redact:"all"`
	TLS       TLS    `koanf:"tls"`
	// Name identifies this client to the server (monitoring, logs).
	// Default "lexigram".
	Name string `koanf:"name"`
	// ConnectTimeout bounds dialling one server. Default 5s.
	ConnectTimeout time.Duration `koanf:"connect_timeout"`
	// EmbeddedServer configures the server run when URLs is empty. It is
	// not called Embedded because that is the method telling whether it
	// is used.
	EmbeddedServer EmbeddedServer `koanf:"embedded"`
}

// TLS configures TLS for connections to an external server.
type TLS struct {
	// CertFile and KeyFile are a client certificate; set both or neither.
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
	// CAFile verifies the server against these roots instead of the
	// system's.
	CAFile string `koanf:"ca_file"`
	// InsecureSkipVerify accepts any server certificate. For tests only.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
}

// EmbeddedServer configures the NATS server run inside the process.
type EmbeddedServer struct {
	// Host is the client listen address. Default "127.0.0.1".
	Host string `koanf:"host"`
	// Port 0 (the default) means 4222, or a free port if 4222 is taken.
	// A positive port must be free or the start fails; -1 always picks a
	// free port.
	Port int `koanf:"port"`
	// DataDir holds JetStream's files. Default "./data".
	DataDir string `koanf:"data_dir"`
	// FsyncInterval 0 (the default) fsyncs every write before it is
	// acknowledged. A positive interval fsyncs in the background instead:
	// faster, but an OS crash can lose writes acknowledged within it.
	FsyncInterval time.Duration `koanf:"fsync_interval"`
	// DontListen serves in-process connections only.
	DontListen bool `koanf:"dont_listen"`
}

// Store configures the JetStream stream that holds the events.
type Store struct {
	// Stream is the stream name. Default "EVENTS".
	Stream string `koanf:"stream"`
	// SubjectPrefix is the first subject token of every event. Default
	// "events".
	SubjectPrefix string `koanf:"subject_prefix"`
	// Replicas is the number of copies, 1 to 5. Default 1.
	Replicas int `koanf:"replicas"`
	// Storage is "file" (the default) or "memory".
	Storage string `koanf:"storage"`
	// MaxAge discards events older than this. 0 (the default) keeps them
	// forever.
	MaxAge time.Duration `koanf:"max_age"`
	// MaxBytes caps the stream's size. 0 (the default) and -1 (NATS's own
	// spelling) both mean unlimited.
	MaxBytes int64 `koanf:"max_bytes"`
	// DuplicateWindow is how long JetStream remembers the event IDs of
	// appends that expect any version, to drop their retries (an append
	// that names its version needs no window). Default 2m; 0 leaves it to the server (also 2m). It
	// may not exceed a non-zero MaxAge.
	DuplicateWindow time.Duration `koanf:"duplicate_window"`
	// Codec encodes event payloads: "msgpack" (the default) or "json".
	Codec string `koanf:"codec"`
	// GroupCommit shares one atomic batch among concurrent appends while
	// enough are in flight for it to pay: "auto" (the default), "on" or
	// "off". Auto turns it on where it pays: the embedded server fsyncing
	// every write (fsync_interval 0) with one file replica.
	GroupCommit string `koanf:"group_commit"`
	// RequireDurability is the least durability the node starts with:
	// "any" (the default), "replicated" (survives the loss of any one
	// server: 3 replicas, or fsync before ack) or "fsync" (survives the
	// power loss of every server: sync_interval always, verified). Below
	// it the node refuses to start, naming what is in force and the fix.
	RequireDurability string `koanf:"require_durability"`
	// ScrubRate runs the integrity audit in the background, checking at
	// most this many events per second (jetstream/audit). 0 (the
	// default) leaves it off.
	ScrubRate int `koanf:"scrub_rate"`
	// ScrubInterval is the least time between the starts of two audit
	// passes. Default 1h.
	ScrubInterval time.Duration `koanf:"scrub_interval"`
}

// Snapshots configures aggregate snapshots and projection checkpoints,
// both kept in JetStream key-value buckets.
type Snapshots struct {
	// Bucket holds snapshots. Default "lexigram_snapshots".
	Bucket string `koanf:"bucket"`
	// EveryEvents snapshots an aggregate after this many new events.
	// Default 100; 0 disables count-based snapshots.
	EveryEvents int `koanf:"every_events"`
	// Interval snapshots an aggregate changed since its last snapshot at
	// least this often. 0 (the default) disables time-based snapshots.
	Interval time.Duration `koanf:"interval"`
	// CheckpointBucket holds projection checkpoints. Default
	// "lexigram_checkpoints".
	CheckpointBucket string `koanf:"checkpoint_bucket"`
}

// Events configures the in-process event bus (the seed's event bus
// settings); node turns them into handlers.EventOptions.
type Events struct {
	// MaxConcurrentHandlers bounds the handlers running at once across
	// the bus. Default 16.
	MaxConcurrentHandlers int `koanf:"max_concurrent_handlers"`
	// HandlerTimeout bounds each handler call. Default 30s; 0 means none.
	HandlerTimeout time.Duration `koanf:"handler_timeout"`
	// ParallelDispatch runs an event's handlers at the same time. Default
	// true; false runs them one after another in registration order.
	ParallelDispatch bool `koanf:"parallel_dispatch"`
	// ContinueOnError lets an event's other handlers run when one fails.
	// Default true.
	ContinueOnError bool `koanf:"continue_on_error"`
}

// Projections configures the projection manager (the seed's projection
// settings); node turns them into projections.Options.
type Projections struct {
	// CheckpointInterval is how many events a projection reads between
	// two checkpoint saves. Default 1000.
	CheckpointInterval int `koanf:"checkpoint_interval"`
	// BatchSize is the most events applied in one step (one transaction
	// of a PostgreSQL read model). Default 100.
	BatchSize int `koanf:"batch_size"`
	// RebuildBatchSize is BatchSize during a rebuild. Default 1000.
	RebuildBatchSize int `koanf:"rebuild_batch_size"`
	// EnableParallelProjections runs projections side by side. Default
	// true; false applies one batch at a time across all of them.
	EnableParallelProjections bool `koanf:"enable_parallel_projections"`
	// LeaseTTL is how long another process waits after the active one's
	// last renewal before it takes a projection over. Default 5s.
	LeaseTTL time.Duration `koanf:"lease_ttl"`
}

// Logging configures the process's slog logger.
type Logging struct {
	// Level is "debug", "info" (the default), "warn" or "error", in any
	// case.
	Level string `koanf:"level"`
	// Format is "text" (the default) or "json".
	Format string `koanf:"format"`
}

// HTTP configures the listener for health checks and metrics.
type HTTP struct {
	// Addr is host:port. Default "127.0.0.1:8080"; an empty host listens
	// on every interface.
	Addr string `koanf:"addr"`
	// Token is the bearer token every /api route requires when Addr is
	// not a loopback address. Never logged.
	Token string `koanf:"token" redact:"all"`
}

// Example configures the example domain lexigram serve installs
// (examples/orders); serve's --example, --postgres and --postgres-schema
// override it.
type Example struct {
	// Name is "orders" (the default) or "none".
	Name string `koanf:"name"`
	// PostgresURL, when set, also keeps the example's order summaries in
	// this PostgreSQL database (postgres://user:password@host:5432/db).
	PostgresURL string `koanf:"postgres_url" redact:"userinfo"`
	// PostgresSchema is where readers find the summaries' views. Default
	// "public".
	PostgresSchema string `koanf:"postgres_schema"`
}

// The example domains Example.Name may name.
const (
	ExampleOrders = "orders"
	ExampleNone   = "none"
)

// Default returns the configuration used for everything the file and the
// environment leave unset.
func Default() Config {
	return Config{
		NATS: NATS{
			Name:           "lexigram",
			ConnectTimeout: 5 * time.Second,
			EmbeddedServer: EmbeddedServer{
				Host:    "127.0.0.1",
				DataDir: "./data",
			},
		},
		Example: Example{Name: ExampleOrders, PostgresSchema: "public"},
		Store: Store{
			Stream:            "EVENTS",
			SubjectPrefix:     "events",
			Replicas:          1,
			Storage:           "file",
			DuplicateWindow:   2 * time.Minute,
			Codec:             "msgpack",
			GroupCommit:       "auto",
			RequireDurability: "any",
			ScrubInterval:     time.Hour,
		},
		Snapshots: Snapshots{
			Bucket:           "lexigram_snapshots",
			EveryEvents:      100,
			CheckpointBucket: "lexigram_checkpoints",
		},
		Events: Events{
			MaxConcurrentHandlers: 16,
			HandlerTimeout:        30 * time.Second,
			ParallelDispatch:      true,
			ContinueOnError:       true,
		},
		Projections: Projections{
			CheckpointInterval:        1000,
			BatchSize:                 100,
			RebuildBatchSize:          1000,
			EnableParallelProjections: true,
			LeaseTTL:                  5 * time.Second,
		},
		Logging: Logging{Level: "info", Format: "text"},
		HTTP:    HTTP{Addr: "127.0.0.1:8080"},
	}
}

// GroupCommit reports whether the store should group concurrent appends,
// resolving store.group_commit "auto".
func (c Config) GroupCommit() bool {
	switch c.Store.GroupCommit {
	case "on":
		return true
	case "auto":
		return c.NATS.Embedded() && c.NATS.EmbeddedServer.FsyncInterval == 0 && c.Store.Replicas <= 1 && c.Store.Storage != "memory"
	}
	return false
}
