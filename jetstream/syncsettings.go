package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// ServerSync is a server's fsync setting, its jetstream { sync_interval }.
type ServerSync struct {
	// Always is sync_interval: always: every write is fsynced before the
	// ack (server.Options.SyncAlways).
	Always bool
	// Interval is the background fsync period without Always
	// (nats-server's default is 2m); 0 when the server does not report
	// it (before 2.10, which has no setting for it).
	Interval time.Duration
	// Source says where the setting was read, for reports; default
	// "Options.ServerSync".
	Source string
}

// SyncSettings are the fsync settings of the servers, by server name, as
// ReadSyncSettings found them; or one setting that holds for every server
// (Options.ServerSync).
type SyncSettings struct {
	servers map[string]ServerSync
	all     *ServerSync
	// asked names the servers the answers were wanted from, sorted (nil:
	// every JetStream server); complete: all of them answered.
	asked    []string
	complete bool
	// problem says why a server has no setting here.
	problem string
}

// SyncFor is a SyncSettings where every server has ss, for a caller that
// knows the servers' setting (an embedded server in this process).
func SyncFor(ss ServerSync) SyncSettings {
	if ss.Source == "" {
		ss.Source = "Options.ServerSync"
	}
	if ss.Always {
		ss.Interval = 0 // the server's background interval does not apply
	}
	return SyncSettings{all: &ss, complete: true}
}

// Of returns a server's setting, if it is known.
func (s SyncSettings) Of(server string) (ServerSync, bool) {
	if s.all != nil {
		return *s.all, true
	}
	ss, ok := s.servers[server]
	return ss, ok
}

// Problem says why some server's setting could not be read; "" if none.
func (s SyncSettings) Problem() string { return s.problem }

// varzSubject asks every server for its VARZ, which holds its JetStream
// configuration. Only the system account answers it, or an account that
// imports it from there.
const varzSubject = "$SYS.REQ.SERVER.PING.VARZ"

// varzWait bounds the wait for the servers' answers.
const varzWait = 2 * time.Second

// noSystemAccess is the reason given when nothing answers varzSubject.
const noSystemAccess = "no system account access"

// varzAnswer is the part of a server's answer to varzSubject the store
// reads (nats-server server/events.go ServerAPIResponse, monitor.go Varz).
type varzAnswer struct {
	Server struct {
		Name    string `json:"name"`
		Version string `json:"ver"`
	} `json:"server"`
	Data struct {
		JetStream struct {
			Config *struct {
				SyncInterval time.Duration `json:"sync_interval"` // absent before 2.10
				SyncAlways   bool          `json:"sync_always"`
			} `json:"config"`
			Meta *struct {
				Size int `json:"cluster_size"`
			} `json:"meta"`
		} `json:"jetstream"`
	} `json:"data"`
	Error *struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
}

// ReadSyncSettings asks the servers named (every JetStream server when
// none is) for their fsync setting through VARZ
// ($SYS.REQ.SERVER.PING.VARZ), waiting at most 2s for their answers.
// A normal account is not answered: then every server's setting is
// unknown and Problem says "no system account access". nc must be a
// system-account connection, or its account must import that subject
// from the system account (with response_type: stream in a cluster, so
// that every server's answer comes through).
func ReadSyncSettings(ctx context.Context, nc *nats.Conn, servers ...string) SyncSettings {
	out := SyncSettings{servers: map[string]ServerSync{}, asked: slices.Sorted(slices.Values(servers))}
	out.asked = slices.Compact(out.asked)
	ctx, cancel := context.WithTimeout(ctx, varzWait)
	defer cancel()
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		out.problem = fmt.Sprintf("subscribe for VARZ answers: %v", err)
		return out
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(varzSubject, inbox, []byte("{}")); err != nil {
		out.problem = fmt.Sprintf("ask %s: %v", varzSubject, err)
		return out
	}
	size := 1 // the JetStream servers there are: a cluster's meta group reports its size
	for !out.complete {
		m, err := sub.NextMsgWithContext(ctx)
		if errors.Is(err, nats.ErrNoResponders) {
			out.problem = noSystemAccess
			return out
		}
		if err != nil {
			out.problem = fmt.Sprintf("no VARZ answer from %s within %s (is publishing to %s denied?)", out.silent(size), varzWait, varzSubject)
			return out
		}
		if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
			out.problem = noSystemAccess
			return out
		}
		var a varzAnswer
		switch err := json.Unmarshal(m.Data, &a); {
		case err != nil:
			out.problem = fmt.Sprintf("unreadable VARZ answer: %v", err)
			continue
		case a.Error != nil:
			out.problem = fmt.Sprintf("server %s refused VARZ: %s (%d)", a.Server.Name, a.Error.Description, a.Error.Code)
			continue
		case a.Data.JetStream.Config == nil:
			continue // JetStream is off there: it holds no stream
		}
		c := a.Data.JetStream.Config
		ss := ServerSync{Always: c.SyncAlways, Interval: c.SyncInterval, Source: "VARZ"}
		if ss.Always {
			ss.Interval = 0
		}
		out.servers[a.Server.Name] = ss
		if meta := a.Data.JetStream.Meta; meta != nil && meta.Size > size {
			size = meta.Size
		}
		out.complete = out.answered(size)
	}
	return out
}

// answered reports whether every server asked (or, with none named, the
// cluster's size of them) has answered.
func (s SyncSettings) answered(size int) bool {
	if len(s.asked) == 0 {
		return len(s.servers) >= size
	}
	for _, name := range s.asked {
		if _, ok := s.servers[name]; !ok {
			return false
		}
	}
	return true
}

// silent names the servers that have not answered.
func (s SyncSettings) silent(size int) string {
	if len(s.asked) == 0 {
		return fmt.Sprintf("%d of %d servers", size-len(s.servers), size)
	}
	var names []string
	for _, name := range s.asked {
		if _, ok := s.servers[name]; !ok {
			names = append(names, name)
		}
	}
	return strings.Join(names, ", ")
}

// needs reports whether reading VARZ again may tell more about peers:
// some peer has no setting, and they are not the servers last asked.
func (s SyncSettings) needs(peers []string) bool {
	if s.all != nil {
		return false
	}
	missing := slices.ContainsFunc(peers, func(p string) bool { _, ok := s.servers[p]; return !ok })
	return missing && !slices.Equal(peers, s.asked)
}
