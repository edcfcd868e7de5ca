package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// serverLogger implements server.Logger. It is always installed, even when
// server logs are not wanted, because the server reports startup failures
// (such as a port already in use) only through Fatalf.
type serverLogger struct {
	log *slog.Logger // nil discards server logs

	mu       sync.Mutex
	fatalMsg string
	fatalErr error
}

func (l *serverLogger) Noticef(format string, v ...any) { l.emit(slog.LevelInfo, format, v) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.emit(slog.LevelWarn, format, v) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.emit(slog.LevelError, format, v) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.emit(slog.LevelDebug, format, v) }
func (l *serverLogger) Tracef(format string, v ...any)  { l.emit(slog.LevelDebug, format, v) }

// Fatalf must not exit the process like the server's own logger does: the
// server stops its startup after a Fatalf and Start turns it into an error.
func (l *serverLogger) Fatalf(format string, v ...any) {
	l.mu.Lock()
	if l.fatalMsg == "" {
		l.fatalMsg = fmt.Sprintf(format, v...)
		for _, a := range v {
			if err, ok := a.(error); ok {
				l.fatalErr = err
				break
			}
		}
	}
	l.mu.Unlock()
	l.emit(slog.LevelError, format, v)
}

// fatal returns the first fatal error reported by the server, if any. The
// original error is wrapped so callers can inspect it with errors.Is.
func (l *serverLogger) fatal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.fatalMsg == "":
		return nil
	case l.fatalErr != nil:
		return &fatalError{msg: l.fatalMsg, err: l.fatalErr}
	default:
		return errors.New(l.fatalMsg)
	}
}

func (l *serverLogger) emit(level slog.Level, format string, v []any) {
	if l.log == nil || !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, v...), "component", "nats-server")
}

type fatalError struct {
	msg string
	err error
}

func (e *fatalError) Error() string { return e.msg }
func (e *fatalError) Unwrap() error { return e.err }
