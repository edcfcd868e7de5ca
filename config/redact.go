package config

import (
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
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

// LogValue is like [Config.LogValue], for one bridge.
func (b Bridge) LogValue() slog.Value { return groupValue(reflect.ValueOf(b)) }

func groupValue(v reflect.Value) slog.Value {
	t := v.Type()
	attrs := make([]slog.Attr, 0, t.NumField())
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		key := f.Tag.Get("koanf")
		switch x := fv.Interface().(type) {
		case []Bridge:
			items := make([]slog.Attr, len(x))
			for i, b := range x {
				items[i] = slog.Attr{Key: strconv.Itoa(i), Value: groupValue(reflect.ValueOf(b))}
			}
			attrs = append(attrs, slog.Attr{Key: key, Value: slog.GroupValue(items...)})
			continue
		case map[string]string:
			r := redactSettings(x)
			items := make([]slog.Attr, 0, len(r))
			for _, k := range slices.Sorted(maps.Keys(r)) {
				items = append(items, slog.String(k, r[k]))
			}
			attrs = append(attrs, slog.Attr{Key: key, Value: slog.GroupValue(items...)})
			continue
		}
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
	add := func(s string) {
		if s == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	leaves(v, prefix, func(key string, f reflect.StructField, v reflect.Value) {
		switch x := v.Interface().(type) {
		case []Bridge:
			for i, br := range x {
				add(flatString(reflect.ValueOf(br), fmt.Sprintf("%s[%d].", key, i)))
			}
			return
		case map[string]string:
			r := redactSettings(x)
			for _, k := range slices.Sorted(maps.Keys(r)) {
				add(key + "." + k + "=" + strconv.Quote(r[k]))
			}
			return
		}
		add(key + "=" + format(redact(f.Tag.Get("redact"), v.Interface())))
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
	case "settings":
		if m, ok := v.(map[string]string); ok {
			return redactSettings(m)
		}
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

// secretWords are the words of a bridge settings key whose value is a
// secret, whole: "password", "sasl_password", "api_key", "connection_string",
// "billing.secrets".
var secretWords = []string{"password", "passwd", "pwd", "pass", "secret", "secrets", "token", "tokens", "credential", "credentials", "creds",
	"key", "apikey", "sas", "signature", "connection", "auth", "private"}

// plainSettings have a secret word in their key but hold no secret.
var plainSettings = []string{"routing_key", "binding_key"}

// redactSettings returns bridge settings as they may be shown: a value
// whose key names a secret, or that looks like a connection string with
// one (password=, key=, ...), as "[redacted]"; the userinfo of URLs
// hidden in every other value.
func redactSettings(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = redactSetting(k, v)
	}
	return out
}

func redactSetting(key, value string) string {
	if value == "" {
		return ""
	}
	k := strings.ToLower(key)
	if !slices.Contains(plainSettings, k) {
		words := strings.FieldsFunc(k, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
		if slices.ContainsFunc(words, func(w string) bool { return slices.Contains(secretWords, w) }) {
			return redacted
		}
	}
	lower := strings.ToLower(value)
	for _, w := range []string{"password=", "passwd=", "pwd=", "secret=", "token=", "key=", "sig=", "signature="} {
		if strings.Contains(lower, w) {
			return redacted
		}
	}
	if strings.Count(value, "://") <= 1 {
		return redactURL(value) // a comma in a password must not split it
	}
	parts := strings.Split(value, ",")
	for i, u := range parts {
		parts[i] = redactURL(u)
	}
	return strings.Join(parts, ",")
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
