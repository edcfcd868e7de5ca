package config

import (
	"errors"
	"strconv"
	"strings"
)

// Encryption configures payload encryption and crypto-shredding (package
// encryption): off unless a master key source is set. It is plain data;
// node opens the key ring from it (node.OpenKeyring).
type Encryption struct {
	// KeyFile holds the master keys: one id:base64key a line, the current
	// key first, older ones after it until `lexigram keys rewrap` has
	// moved every data key off them.
	KeyFile string `koanf:"key_file"`
	// KeyEnv names an environment variable holding the master keys
	// instead, id:base64key comma-separated, the current first (e.g.
	// "LEXIGRAM_MASTER_KEYS"). Set KeyFile or KeyEnv, not both.
	KeyEnv string `koanf:"key_env"`
	// Bucket is the KV bucket of the wrapped data keys. Default
	// "LEXIGRAM_KEYS".
	Bucket string `koanf:"bucket"`
	// Mode is what is sealed of each event: "fields" (the default: the
	// fields tagged `lexigram:"personal"`) or "whole" (the whole body).
	Mode string `koanf:"mode"`
	// WholeTypes are event types sealed whole whatever Mode says.
	WholeTypes []string `koanf:"whole_types"`
	// PlainTypes are event types never sealed.
	PlainTypes []string `koanf:"plain_types"`
}

// Enabled reports whether a master key source is set.
func (e Encryption) Enabled() bool { return e.KeyFile != "" || e.KeyEnv != "" }

// Validate reports every problem with e, joined, each a *FieldError
// naming the setting under "encryption".
func (e Encryption) Validate() error {
	var p problems
	e.validate(&p)
	return errors.Join(p...)
}

func (e Encryption) validate(p *problems) {
	if e.KeyFile != "" && e.KeyEnv != "" {
		p.add("encryption.key_env", strconv.Quote(e.KeyEnv), "is set as well as encryption.key_file: set one master key source")
	}
	if e.Bucket != "" && !isToken(e.Bucket) {
		p.add("encryption.bucket", strconv.Quote(e.Bucket), "is not a valid bucket name: use letters, digits, '-' and '_'")
	}
	if e.Mode != "" && e.Mode != "fields" && e.Mode != "whole" {
		p.add("encryption.mode", strconv.Quote(e.Mode), `is not a mode: use "fields" (the fields tagged personal) or "whole"`)
	}
	seen := map[string]string{}
	for _, l := range []struct {
		field string
		types []string
	}{{"encryption.whole_types", e.WholeTypes}, {"encryption.plain_types", e.PlainTypes}} {
		for i, t := range l.types {
			field := l.field + "[" + strconv.Itoa(i) + "]"
			switch prev, dup := seen[t]; {
			case strings.TrimSpace(t) == "":
				p.add(field, "", "is empty: name an event type, e.g. \"order.placed\"")
			case dup:
				p.add(field, strconv.Quote(t), "is listed already as "+prev+": list each event type once")
			default:
				seen[t] = field
			}
		}
	}
}
