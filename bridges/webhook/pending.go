package webhook

import (
	"sync"
	"time"
)

// maxPending bounds the messages whose deliveries are remembered between
// Publish calls: more than an outbound bridge holds unacknowledged by
// default (1000). Past it the oldest are forgotten, and a retry of one
// sends it again to every endpoint (at least once, same webhook-id).
const maxPending = 8192

// attemptState is one message's progress at one endpoint.
type attemptState struct {
	attempts int
	next     time.Time // no request before this
	status   int       // of the last attempt
	last     error     // why the last attempt failed
}

// progress is what a Publish call that ended before every endpoint
// settled leaves for the next call with the same message: the endpoints
// still due (with their attempts, so the retry budget spans calls) and
// the failures so far. Endpoints that took the message are in neither,
// so a retry does not send it to them again.
type progress struct {
	due      map[int]attemptState // by endpoint index
	failures []Failure
}

// pendingSet holds the progress of messages by ID.
type pendingSet struct {
	mu    sync.Mutex
	byID  map[string]*progress
	order []string // insertion order, for eviction; may hold stale IDs
}

// take removes and returns the progress of a message, nil if none.
func (s *pendingSet) take(id string) *progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.byID[id]
	if p != nil {
		delete(s.byID, id)
	}
	return p
}

func (s *pendingSet) put(id string, p *progress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = map[string]*progress{}
	}
	for len(s.byID) >= maxPending && len(s.order) > 0 {
		delete(s.byID, s.order[0])
		s.order = s.order[1:]
	}
	s.byID[id] = p
	s.order = append(s.order, id)
	if len(s.order) > 2*maxPending {
		live := s.order[:0]
		seen := make(map[string]bool, len(s.byID))
		for _, k := range s.order {
			if _, ok := s.byID[k]; ok && !seen[k] {
				live = append(live, k)
				seen[k] = true
			}
		}
		s.order = live
	}
}

func (s *pendingSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}
