package config

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	env "github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

// EnvPrefix starts the name of every environment variable Load reads.
const EnvPrefix = "LEXIGRAM_"

// ConfigFileEnv is left alone by Load so that a command can use it to name
// the configuration file, e.g. Load(os.Getenv(ConfigFileEnv)).
const ConfigFileEnv = EnvPrefix + "CONFIG"

// setting is one leaf of Config: what users can set, under which names.
type setting struct {
	key    string // YAML path, e.g. "nats.embedded.data_dir"
	env    string // e.g. "LEXIGRAM_NATS_EMBEDDED_DATA_DIR"
	redact string // "", "all" or "userinfo"
	typ    reflect.Type
	def    any
}

var (
	settings     []setting
	settingByKey = map[string]setting{}
	settingByEnv = map[string]setting{}
)

func init() {
	leaves(reflect.ValueOf(Default()), "", func(key string, f reflect.StructField, v reflect.Value) {
		if key == bridgesKey {
			return // a list: see parseBridges
		}
		s := setting{
			key:    key,
			env:    EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_")),
			redact: f.Tag.Get("redact"),
			typ:    f.Type,
			def:    v.Interface(),
		}
		settings = append(settings, s)
		settingByKey[s.key] = s
		settingByEnv[s.env] = s
	})
}

// leaves calls fn for every non-struct field of the struct v, depth first,
// with its dotted koanf key.
func leaves(v reflect.Value, prefix string, fn func(key string, f reflect.StructField, v reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key := prefix + f.Tag.Get("koanf")
		if f.Type.Kind() == reflect.Struct {
			leaves(v.Field(i), key+".", fn)
			continue
		}
		fn(key, f, v.Field(i))
	}
}

// Load builds the configuration from, in increasing precedence, [Default],
// the YAML file at path (skipped if path is ""), and the LEXIGRAM_*
// environment variables, then validates it. A key or variable that names no
// setting is an error, so typos do not go unnoticed. All problems found in
// the file and the environment are reported together, as are all problems
// found by Validate; on error the Config is the zero value.
func Load(path string) (Config, error) {
	k := koanf.New(".")
	defaults := map[string]any{}
	for _, s := range settings {
		defaults[s.key] = s.def
	}
	if err := k.Load(confmap.Provider(defaults, "."), nil); err != nil {
		return Config{}, err
	}

	var problems []error
	var bridges []Bridge
	if path != "" {
		values, fileProblems, err := readFile(path)
		if err != nil {
			return Config{}, err
		}
		problems = fileProblems
		bridges, _ = values[bridgesKey].([]Bridge)
		delete(values, bridgesKey)
		if err := k.Load(confmap.Provider(values, "."), nil); err != nil {
			return Config{}, err
		}
	}

	fromEnv := env.Provider(".", env.Opt{
		Prefix: EnvPrefix,
		TransformFunc: func(name, raw string) (string, any) {
			if name == ConfigFileEnv {
				return "", nil
			}
			s, ok := settingByEnv[name]
			if !ok {
				problem := "is not a known setting"
				if strings.HasPrefix(name, EnvPrefix+"BRIDGES") {
					problem = "cannot be set from the environment: bridges are a list, write them in the YAML file's bridges section"
				}
				problems = append(problems, &FieldError{Field: name, Problem: problem})
				return "", nil
			}
			v, err := s.parse(name, raw)
			if err != nil {
				problems = append(problems, err)
				return "", nil
			}
			return s.key, v
		},
	})
	if err := k.Load(fromEnv, nil); err != nil {
		return Config{}, err
	}
	if err := errors.Join(problems...); err != nil {
		return Config{}, err
	}

	var c Config
	// Values are already of their field's type; ErrorUnused only guards
	// against the settings table and the structs drifting apart.
	err := k.UnmarshalWithConf("", &c, koanf.UnmarshalConf{
		DecoderConfig: &mapstructure.DecoderConfig{TagName: "koanf", ErrorUnused: true},
	})
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c.Bridges = bridges
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// readFile returns the settings in the YAML file as a flat map of values of
// their fields' types, and the problems with the keys it could not use. err
// is for a file that cannot be read or parsed at all.
func readFile(path string) (values map[string]any, problems []error, err error) {
	f := koanf.New(".")
	if err := f.Load(file.Provider(path), yaml.Parser()); err != nil {
		return nil, nil, fmt.Errorf("config file %s: %w", path, err)
	}
	raw := f.All()
	values = map[string]any{}
	for _, key := range slices.Sorted(maps.Keys(raw)) {
		v := raw[key]
		if m, isMap := v.(map[string]any); v == nil || isMap && len(m) == 0 {
			continue // a key or section left empty keeps its default
		}
		if key == bridgesKey {
			bridges, bridgeProblems := parseBridges(v)
			for _, p := range bridgeProblems {
				problems = append(problems, fmt.Errorf("config file %s: %w", path, p))
			}
			values[key] = bridges
			continue
		}
		s, ok := settingByKey[key]
		if !ok {
			problems = append(problems, fmt.Errorf("config file %s: %w", path, unknownKey(key)))
			continue
		}
		parsed, err := s.parse(key, v)
		if err != nil {
			problems = append(problems, fmt.Errorf("config file %s: %w", path, err))
			continue
		}
		values[key] = parsed
	}
	return values, problems, nil
}

func unknownKey(key string) *FieldError {
	if strings.HasPrefix(key, bridgesKey+".") {
		return &FieldError{Field: bridgesKey, Problem: `is not a list: write each bridge as an item, starting with "- name: ..."`}
	}
	for _, s := range settings {
		if strings.HasPrefix(s.key, key+".") {
			return &FieldError{Field: key, Problem: "is a section, not a setting: put its settings under it"}
		}
	}
	return &FieldError{Field: key, Problem: "is not a known setting"}
}

const durationHint = `use e.g. "500ms", "30s" or "2m"`

// parse converts a value from YAML (any scalar or list) or the environment
// (always a string) to the setting's type. name is what the user wrote: the
// YAML key or the variable.
func (s setting) parse(name string, raw any) (any, error) {
	fail := func(problem string) (any, error) {
		return nil, &FieldError{Field: name, Value: s.shown(raw), Problem: problem}
	}
	str, isString := raw.(string)
	if isString {
		str = strings.TrimSpace(str)
	}
	switch {
	case s.typ == reflect.TypeFor[time.Duration]():
		if n, ok := raw.(int); ok && n == 0 {
			return time.Duration(0), nil
		}
		if _, ok := raw.(int); ok {
			return fail("has no unit: " + durationHint)
		}
		d, err := time.ParseDuration(str)
		if !isString || err != nil {
			return fail("is not a duration: " + durationHint)
		}
		return d, nil
	case s.typ.Kind() == reflect.Int || s.typ.Kind() == reflect.Int64:
		n, ok := int64(0), false
		switch x := raw.(type) {
		case int:
			n, ok = int64(x), true
		case string:
			var err error
			n, err = strconv.ParseInt(str, 10, 64)
			ok = err == nil
		}
		if !ok || reflect.New(s.typ).Elem().OverflowInt(n) {
			return fail("is not an integer")
		}
		return reflect.ValueOf(n).Convert(s.typ).Interface(), nil
	case s.typ.Kind() == reflect.Bool:
		if b, ok := raw.(bool); ok {
			return b, nil
		}
		b, err := strconv.ParseBool(str)
		if !isString || err != nil {
			return fail("is not true or false")
		}
		return b, nil
	case s.typ.Kind() == reflect.String:
		if !isString {
			return fail("is not a string: quote it")
		}
		return raw.(string), nil
	case s.typ == reflect.TypeFor[[]string]():
		if isString {
			// The environment can only give one string: a comma-separated list.
			list := []string{}
			for part := range strings.SplitSeq(str, ",") {
				if part = strings.TrimSpace(part); part != "" {
					list = append(list, part)
				}
			}
			return list, nil
		}
		items, ok := raw.([]any)
		list := make([]string, 0, len(items))
		for _, item := range items {
			str, isString := item.(string)
			ok = ok && isString
			list = append(list, str)
		}
		if !ok {
			return fail("is not a list of strings")
		}
		return list, nil
	}
	panic("config: no parser for " + s.typ.String())
}
