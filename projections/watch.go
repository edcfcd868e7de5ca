package projections

import "sync"

// watch is a position that waiters can wait on without polling: every
// advance closes the channel they hold. It is what WaitFor waits on: moved
// by the follower where this process applies the projection, and by the
// ProgressRelay where it stands by.
type watch struct {
	mu   sync.Mutex
	pos  uint64
	wake chan struct{}
}

func (w *watch) advance(pos uint64) {
	w.mu.Lock()
	if pos > w.pos {
		w.pos = pos
		w.kickLocked()
	}
	w.mu.Unlock()
}

// kick wakes the waiters without moving: the state changed.
func (w *watch) kick() {
	w.mu.Lock()
	w.kickLocked()
	w.mu.Unlock()
}

func (w *watch) kickLocked() {
	if w.wake != nil {
		close(w.wake)
		w.wake = nil
	}
}

func (w *watch) load() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pos
}

func (w *watch) wait() (uint64, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wake == nil {
		w.wake = make(chan struct{})
	}
	return w.pos, w.wake
}
