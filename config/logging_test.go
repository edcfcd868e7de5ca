package config

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewLoggerLevel(t *testing.T) {
	var buf bytes.Buffer
	log := Logging{Level: "WARN", Format: "text"}.NewLogger(&buf)
	log.Info("dropped")
	log.Warn("kept")
	if strings.Contains(buf.String(), "dropped") || !strings.Contains(buf.String(), "msg=kept") {
		t.Errorf("warn-level text logger wrote %q", buf.String())
	}

	buf.Reset()
	Logging{Level: "debug", Format: "text"}.NewLogger(&buf).Debug("shown")
	if !strings.Contains(buf.String(), "msg=shown") {
		t.Errorf("debug-level logger wrote %q", buf.String())
	}
}

func TestNewLoggerFormat(t *testing.T) {
	var buf bytes.Buffer
	Logging{Level: "info", Format: "json"}.NewLogger(&buf).Info("hello", "n", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["msg"] != "hello" || rec["n"] != 1.0 {
		t.Errorf("json logger wrote %q (%v)", buf.String(), err)
	}

	buf.Reset()
	Default().Logging.NewLogger(&buf).Info("hello")
	if !strings.HasPrefix(buf.String(), "time=") || !strings.Contains(buf.String(), "level=INFO msg=hello") {
		t.Errorf("default logger wrote %q, want a text line", buf.String())
	}
}
