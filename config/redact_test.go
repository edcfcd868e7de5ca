package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const secret = "hunter2-secret"

func secretConfig() Config {
	c := Default()
	c.NATS.URLs = []string{"nats://bob:" + secret + "@host:4222", "nats://" + secret + "@other:4222"}
	c.NATS.User = "bob"
	c.NATS.Password = secret
	c.NATS.Token = secret
	return c
}

func assertRedacted(t *testing.T, what, text string) {
	t.Helper()
	if strings.Contains(text, secret) {
		t.Errorf("%s leaks the secret: %s", what, text)
	}
}

func TestStringRedactsSecrets(t *testing.T) {
	c := secretConfig()
	for what, text := range map[string]string{
		"String()":    c.String(),
		"%v":          fmt.Sprintf("%v", c),
		"%+v":         fmt.Sprintf("%+v", c),
		"%#v":         fmt.Sprintf("%#v", c),
		"NATS %v":     fmt.Sprintf("%v", c.NATS),
		"NATS %#v":    fmt.Sprintf("%#v", c.NATS),
		"pointer %+v": fmt.Sprintf("%+v", &c),
	} {
		assertRedacted(t, what, text)
		for _, want := range []string{
			`nats.password="[redacted]"`,
			`nats.token="[redacted]"`,
			`"nats://[redacted]@host:4222"`,
			`"nats://[redacted]@other:4222"`,
			`nats.user="bob"`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %s: %s", what, want, text)
			}
		}
	}
	if s := Default().String(); !strings.Contains(s, `nats.password="" `) || !strings.Contains(s, "store.replicas=1 ") {
		t.Errorf("Default().String() = %s, want unset secrets shown empty and plain values as they are", s)
	}
}

func TestLogValueRedactsSecrets(t *testing.T) {
	c := secretConfig()
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("loaded", "config", c, "nats", c.NATS)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("loaded", "config", c)

	assertRedacted(t, "text log", text.String())
	assertRedacted(t, "JSON log", js.String())
	for _, want := range []string{
		"config.nats.password=[redacted]",
		"config.nats.token=[redacted]",
		"config.nats.urls=\"[nats://[redacted]@host:4222",
		"config.store.replicas=1",
		"config.nats.connect_timeout=5s",
		"nats.password=[redacted]",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text log lacks %s: %s", want, text.String())
		}
	}
	if !strings.Contains(js.String(), `"password":"[redacted]"`) {
		t.Errorf("JSON log lacks the redacted password: %s", js.String())
	}
}

func TestErrorsNeverShowSecrets(t *testing.T) {
	c := Default()
	c.NATS.URLs = []string{
		"ftp://bob:" + secret + "@host:4222",    // wrong scheme
		"nats://bob:" + secret + "@host:port",   // does not parse
		"bob:" + secret + "@host:4222",          // no scheme
		"nats://bob:" + secret + "/x@host:4222", // '/' in the password
	}
	c.NATS.Password = secret // without a user
	c.NATS.Token = secret    // a second way to authenticate
	err := c.Validate()
	if n := len(fieldErrors(err)); n != 6 {
		t.Fatalf("Validate() reported %d problems, want 6: %v", n, err)
	}
	assertRedacted(t, "Validate error", err.Error())
	for _, fe := range fieldErrors(err) {
		if fe.Field == "nats.password" || fe.Field == "nats.token" {
			if fe.Value != "" {
				t.Errorf("FieldError for %s has Value %q, want none", fe.Field, fe.Value)
			}
		}
	}
	if !strings.Contains(err.Error(), `nats.urls[0]: "ftp://[redacted]@host:4222"`) {
		t.Errorf("URL error does not show the redacted URL: %v", err)
	}
}

func TestLoadErrorsNeverShowSecrets(t *testing.T) {
	cleanEnv(t)
	path := writeYAML(t, "nats:\n  password: ["+secret+"]\n  pasword: "+secret+"\n")
	t.Setenv("LEXIGRAM_NATS_TOKEN_", secret) // a typo: unknown variable
	_, err := Load(path)
	want := map[string]bool{"nats.password": true, "nats.pasword": true, "LEXIGRAM_NATS_TOKEN_": true}
	for _, fe := range fieldErrors(err) {
		if !want[fe.Field] || fe.Value != "" {
			t.Errorf("unexpected %#v", fe)
		}
		delete(want, fe.Field)
	}
	if len(want) > 0 {
		t.Errorf("no FieldError for %v in %v", want, err)
	}
	assertRedacted(t, "Load error", err.Error())

	cleanEnv(t)
	t.Setenv("LEXIGRAM_NATS_PASSWORD", secret)
	t.Setenv("LEXIGRAM_NATS_URLS", "tls://bob:"+secret+"@host:port")
	_, err = Load("")
	if n := len(fieldErrors(err)); n != 2 {
		t.Fatalf("got %d problems, want 2 (URL, password without user): %v", n, err)
	}
	assertRedacted(t, "Load validation error", err.Error())
}

func TestFieldErrorOmitsEmptyValue(t *testing.T) {
	fe := &FieldError{Field: "nats.password", Problem: "is bad"}
	if fe.Error() != "nats.password: is bad" {
		t.Errorf("Error() = %q", fe.Error())
	}
	fe.Value = `"x"`
	if fe.Error() != `nats.password: "x" is bad` {
		t.Errorf("Error() = %q", fe.Error())
	}
}
