package encryption

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/lexigram/events/platform"
)

// Placeholder is what a personal string field reads as once its data
// subject is forgotten. Personal fields of other kinds read as their zero
// value.
const Placeholder = "[forgotten]"

// tagName is the struct tag key: `lexigram:"personal"` marks a field to
// seal in ModeFields; `lexigram:"subject"` marks the string field naming
// the data subject whose key seals the event (the aggregate's if it is
// empty or absent). A field may be both: `lexigram:"subject,personal"`.
const tagName = "lexigram"

// plan is how one registered event type is sealed, worked out once from
// its Go type's tags.
type plan struct {
	mode     Mode
	goType   reflect.Type
	subject  int          // index of the subject field; -1: none
	personal []int        // indices of the personal fields
	secret   reflect.Type // a struct of the personal fields, as they are sealed
	err      error        // the tags cannot be used
}

func (k *Keyring) planOf(et *platform.EventType) *plan {
	if p, ok := k.plans.Load(et); ok {
		return p.(*plan)
	}
	p := newPlan(et, k.modeOf(et.Name))
	k.plans.Store(et, p)
	return p
}

func (k *Keyring) modeOf(eventType string) Mode {
	if m, ok := k.opts.Modes[eventType]; ok {
		return m
	}
	if eventType == ForgottenEventType {
		return ModeNone // names a subject and key ID only, for projections without the key
	}
	return k.opts.Mode
}

func newPlan(et *platform.EventType, mode Mode) *plan {
	t := et.GoType()
	p := &plan{mode: mode, goType: t, subject: -1}
	if t.Kind() != reflect.Struct {
		if mode == ModeFields {
			p.mode = ModeNone // nothing can be tagged
		}
		return p
	}
	var secret []reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup(tagName)
		if !ok {
			continue
		}
		for _, opt := range strings.Split(tag, ",") {
			switch strings.TrimSpace(opt) {
			case "subject":
				if f.Type.Kind() != reflect.String || !f.IsExported() {
					p.err = fmt.Errorf("field %s of %v is tagged subject: it must be an exported string field", f.Name, t)
					return p
				}
				p.subject = i
			case "personal":
				if !f.IsExported() {
					p.err = fmt.Errorf("field %s of %v is tagged personal and unexported: codecs do not store it: export it or drop the tag", f.Name, t)
					return p
				}
				p.personal = append(p.personal, i)
				sf := reflect.StructField{Name: f.Name, Type: f.Type, Tag: f.Tag}
				secret = append(secret, sf)
			case "":
			default:
				p.err = fmt.Errorf("field %s of %v: tag %s:%q has %q: use \"personal\", \"subject\" or both", f.Name, t, tagName, tag, opt)
				return p
			}
		}
	}
	if len(p.personal) > 0 {
		// Also for other modes: events stored while the type was sealed by
		// fields still open.
		p.secret = reflect.StructOf(secret)
	} else if mode == ModeFields {
		p.mode = ModeNone
	}
	return p
}

// subjectOf is the data subject the event names; "" for its aggregate's.
func (p *plan) subjectOf(event any) string {
	if p.subject < 0 {
		return ""
	}
	return reflect.ValueOf(event).Field(p.subject).String()
}

// split returns a copy of event with its personal fields zeroed, and a
// pointer to a secret struct holding their values.
func (p *plan) split(event any) (public, secret any) {
	v := reflect.ValueOf(event)
	pub := reflect.New(p.goType).Elem()
	pub.Set(v)
	sec := reflect.New(p.secret)
	for j, i := range p.personal {
		sec.Elem().Field(j).Set(v.Field(i))
		pub.Field(i).SetZero()
	}
	return pub.Interface(), sec.Interface()
}

// placeholders sets the personal fields of v, a settable value of the
// plan's type, to what a forgotten subject's fields read as.
func (p *plan) placeholders(v reflect.Value) {
	for _, i := range p.personal {
		f := v.Field(i)
		if f.Kind() == reflect.String {
			f.SetString(Placeholder)
		} else {
			f.SetZero()
		}
	}
}
