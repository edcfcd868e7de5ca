package config

import (
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
)

const redacted = "[redacted]"

// LogValue makes slog log c as nested groups keyed like the YAML file, with
// nats.password, nats.token and any userinfo in nats.urls shown as
// "[redacted]".
func (c Config) LogValue() slog.Value { return groupValue(reflect.ValueOf(c)) }

// String lists every setting as key=value on one line, secrets redacted as
// in LogValue.
func (c Config) String() string { return flatString(reflect.ValueOf(c), "") }

// GoString keeps %#v from printing secrets.
func (c Config) GoString() string { return c.String() }

// LogValue is like [Config.LogValue], for when only the NATS section is
// logged.
func (n NATS) LogValue() slog.Value { return groupValue(reflect.ValueOf(n)) }

// String is like [Config.String], for the NATS section alone.
func (n NATS) String() string { return flatString(reflect.ValueOf(n), "nats.") }

// GoString keeps %#v from printing secrets.
func (n NATS) GoString() string { return n.String() }

func groupValue(v reflect.Value) slog.Value {
	t := v.Type()
	attrs := make([]slog.Attr, 0, t.NumField())
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		key := f.Tag.Get("koanf")
		if f.Type.Kind() == reflect.Struct {
			attrs = append(attrs, slog.Attr{Key: key, Value: groupValue(fv)})
			continue
		}
		attrs = append(attrs, slog.Any(key, redact(f.Tag.Get("redact"), fv.Interface())))
	}
	return slog.GroupValue(attrs...)
}

func flatString(v reflect.Value, prefix string) string {
	var b strings.Builder
	leaves(v, prefix, func(key string, f reflect.StructField, v reflect.Value) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(key + "=" + format(redact(f.Tag.Get("redact"), v.Interface())))
	})
	return b.String()
}

// shown is raw as it may appear in an error message: never for a secret.
func (s setting) shown(raw any) string {
	if s.redact == "all" {
		return ""
	}
	return format(redact(s.redact, raw))
}

// redact returns v without the secrets that the field's redact tag names:
// "all" hides a non-empty value entirely (an empty one tells that it is
// unset and gives nothing away), "userinfo" hides the userinfo of URLs.
func redact(mode string, v any) any {
	switch mode {
	case "all":
		if v != "" {
			return redacted
		}
	case "userinfo":
		switch x := v.(type) {
		case string:
			return redactURL(x)
		case []string:
			out := make([]string, len(x))
			for i, u := range x {
				out[i] = redactURL(u)
			}
			return out
		case []any:
			out := make([]string, len(x))
			for i, u := range x {
				out[i] = redactURL(fmt.Sprint(u))
			}
			return out
		}
	}
	return v
}

// redactURL hides everything between the scheme and the last '@': a user
// and password, or a token. It works on the raw string, because a URL that
// fails to parse can still hold a password.
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest = "", s
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s
	}
	if ok {
		scheme += "://"
	}
	return scheme + redacted + rest[at:]
}

func format(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case []string:
		return fmt.Sprintf("%q", x)
	}
	return fmt.Sprint(v)
}
