package platform

import (
	"fmt"
	"strings"
	"time"
)

// Durability is what an acknowledged append survives, as the store found
// it: the stream's storage, replicas and persist mode, and the servers'
// fsync setting. A store computes it when it opens (and when it re-reads
// its stream), never per append, and reports it in every AppendResult.
// The zero value means "not reported".
type Durability struct {
	// Storage is "file" or "memory"; "" means not reported.
	Storage string
	// Replicas is the number of servers holding the stream.
	Replicas int
	// Sync is how the servers holding a file stream fsync; empty for
	// memory storage, where it does not apply.
	Sync SyncMode
	// SyncInterval is the background fsync period with SyncPeriodic; 0
	// when the server does not report it (nats-server before 2.10).
	SyncInterval time.Duration
	// PersistAsync is set when the stream acknowledges before it writes
	// (JetStream persist mode async).
	PersistAsync bool
	// Source says where Sync was read ("embedded server", "VARZ of n0,
	// n1, n2") or, with SyncUnknown, why it could not be read.
	Source string
}

// SyncMode is how a server fsyncs JetStream writes.
type SyncMode string

const (
	// SyncAlways: every write is fsynced before it is acknowledged
	// (jetstream { sync_interval: always }; on R>1 the Raft log is).
	SyncAlways SyncMode = "always"
	// SyncPeriodic: writes are flushed to the OS before the ack and
	// fsynced in the background (nats-server's default, every 2 minutes).
	SyncPeriodic SyncMode = "interval"
	// SyncUnknown: the setting could not be read; Durability.Source says why.
	SyncUnknown SyncMode = "unknown"
)

// DurabilityLevel is a grade of Durability that a configuration can
// require (store.require_durability). Each level includes the ones
// below it; what each promises is what an acknowledged append survives:
//
//   - DurabilityAny promises nothing beyond what the stream gives: memory
//     storage, persist mode async and a single replica fsynced in the
//     background are all "any".
//   - DurabilityReplicated: the crash, OS crash or power loss of any one
//     server. File storage with synchronous persist and either at least 3
//     replicas (acknowledged by a quorum of 2, which still exists with one
//     server gone) or every write fsynced (SyncAlways, which survives the
//     crash of the one server that holds it).
//   - DurabilityFsync: the power loss of every server at once. File
//     storage, synchronous persist and SyncAlways verified on every server
//     holding the stream, at any replica count.
//
// Two replicas do not make "replicated": their quorum is both servers, so
// losing one stops the stream, and with background fsync the one left
// has no majority to repair the other's lost tail from. No level covers
// the loss of a disk on one replica: for that, run 3 replicas.
type DurabilityLevel string

const (
	DurabilityAny        DurabilityLevel = "any"
	DurabilityReplicated DurabilityLevel = "replicated"
	DurabilityFsync      DurabilityLevel = "fsync"
)

// DurabilityLevels lists the levels from the weakest.
var DurabilityLevels = []DurabilityLevel{DurabilityAny, DurabilityReplicated, DurabilityFsync}

// ParseDurabilityLevel reads "any", "replicated" or "fsync" (any case);
// "" is DurabilityAny.
func ParseDurabilityLevel(s string) (DurabilityLevel, error) {
	l := DurabilityLevel(strings.ToLower(strings.TrimSpace(s)))
	if l == "" {
		return DurabilityAny, nil
	}
	if l.rank() < 0 {
		return "", Errorf(CodeInvalidArgument, "durability level %q: use %q, %q or %q", s, DurabilityAny, DurabilityReplicated, DurabilityFsync)
	}
	return l, nil
}

// rank orders the levels; -1 for an unknown one, and "" counts as any.
func (l DurabilityLevel) rank() int {
	switch l {
	case DurabilityAny, "":
		return 0
	case DurabilityReplicated:
		return 1
	case DurabilityFsync:
		return 2
	}
	return -1
}

// Level is the highest level d reaches. A SyncUnknown stream reaches
// DurabilityReplicated only by its replicas: an fsync that cannot be
// verified is not counted.
func (d Durability) Level() DurabilityLevel {
	switch {
	case d.Storage != "file" || d.PersistAsync:
		return DurabilityAny
	case d.Sync == SyncAlways:
		return DurabilityFsync
	case d.Replicas >= 3:
		return DurabilityReplicated
	}
	return DurabilityAny
}

// Meets reports whether d reaches level l ("" is any; an unknown level is
// never met).
func (d Durability) Meets(l DurabilityLevel) bool {
	r := l.rank()
	return r >= 0 && d.Level().rank() >= r
}

// String says it in words: "fsync before ack on 3 replicas", "flushed to
// the OS, fsync every 2m0s, on 1 replica", "in memory only", "sync
// setting unknown (no system account access), on 3 replicas".
func (d Durability) String() string {
	on := replicasText(d.Replicas)
	switch {
	case d.Storage == "":
		return "durability not reported"
	case d.Storage == "memory":
		if d.Replicas > 1 {
			return "in memory only, " + on
		}
		return "in memory only"
	case d.PersistAsync:
		return "acknowledged before it is written (persist mode async), " + on
	}
	switch d.Sync {
	case SyncAlways:
		return "fsync before ack " + on
	case SyncPeriodic:
		if d.SyncInterval <= 0 {
			return "flushed to the OS, fsync in the background (interval not reported), " + on
		}
		return fmt.Sprintf("flushed to the OS, fsync every %s, %s", d.SyncInterval, on)
	}
	why := d.Source
	if why == "" {
		why = "not read"
	}
	return fmt.Sprintf("sync setting unknown (%s), %s", why, on)
}

func replicasText(n int) string {
	if n == 1 {
		return "on 1 replica"
	}
	return fmt.Sprintf("on %d replicas", n)
}
