package sagatest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/lexigram/events/sagas"
)

// sample is an instance with every field set, so that a store that drops
// or mangles any of them fails the round trip. Its times carry a zone
// other than UTC and nanoseconds, and Created also a monotonic clock
// reading, which no encoding keeps.
func sample(sagaType, key string) sagas.Instance {
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("UTC+2", 2*60*60))
	return sagas.Instance{
		ID: sagas.InstanceID(sagaType, key), Type: sagaType, Key: key,
		State: sagas.Running, Step: 2, Attempt: 3,
		Data:       json.RawMessage(`{"order": "o-1", "amount": 1250, "items": ["book", "pen"], "note": "snow \u2603 ünï"}`),
		Generation: 7,
		Due:        at.Add(10 * time.Minute),
		Deadline:   at.Add(24 * time.Hour),
		Inbox: []sagas.Received{
			{Kind: "orders.PaymentReceived", Type: "payment.received", ID: "event-9", Position: 42, Event: json.RawMessage(`{"order": "o-1", "amount": 1250}`)},
		},
		CorrelationID: "correlation-1",
		CausationID:   "causation-1",
		Trace:         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Error:         "payment: the service timed out",
		Resume:        sagas.Compensating,
		Owner:         "manager-a",
		LeaseUntil:    at.Add(time.Minute),
		History: []sagas.StepRecord{
			{Step: "reserve", Attempt: 1, Started: at, Took: 1500*time.Millisecond + 7, Outcome: "ok"},
			{Step: "charge", Compensation: true, Attempt: 2, Started: at.Add(2 * time.Second), Took: time.Hour + 1, Outcome: "retry", Error: "declined"},
			{Step: "await-payment", Attempt: 1, Started: at.Add(3 * time.Second), Took: 3, Outcome: "ok", Event: 41},
		},
		Created: time.Now(),
		Updated: at.Add(3 * time.Second),
	}
}

// clone copies in with its own Data and History, so that changing one
// does not change the other.
func clone(in sagas.Instance) sagas.Instance {
	in.Data = bytes.Clone(in.Data)
	in.History = slices.Clone(in.History)
	in.Inbox = slices.Clone(in.Inbox)
	return in
}

// checkSampleIsComplete fails the suite itself when Instance or
// StepRecord gains a field the sample leaves zero: the round trip would
// not notice a store losing it.
func checkSampleIsComplete(t *testing.T) {
	t.Helper()
	in := sample("type", "key")
	v := reflect.ValueOf(in)
	for i := range v.NumField() {
		if name := v.Type().Field(i).Name; name != "Revision" && v.Field(i).IsZero() {
			t.Errorf("sagatest: the sample instance leaves Instance.%s zero: set it in sample(), or the round trip cannot tell whether stores keep it", name)
		}
	}
	set := make([]bool, reflect.TypeFor[sagas.StepRecord]().NumField())
	for _, h := range in.History {
		hv := reflect.ValueOf(h)
		for i := range hv.NumField() {
			set[i] = set[i] || !hv.Field(i).IsZero()
		}
	}
	for i, ok := range set {
		if !ok {
			t.Errorf("sagatest: no step record of the sample instance sets StepRecord.%s: set it in sample()", reflect.TypeFor[sagas.StepRecord]().Field(i).Name)
		}
	}
}

// expectSame reports every field in which got differs from want, Revision
// aside: times by Equal, Data as JSON values, the rest exactly.
func expectSame(t *testing.T, what string, want, got sagas.Instance) {
	t.Helper()
	want.Revision, got.Revision = 0, 0
	var diffs []string
	compare("", reflect.ValueOf(want), reflect.ValueOf(got), &diffs)
	for _, d := range diffs {
		t.Errorf("%s: %s", what, d)
	}
}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()
)

func compare(path string, want, got reflect.Value, diffs *[]string) {
	switch {
	case want.Type() == timeType:
		w, g := want.Interface().(time.Time), got.Interface().(time.Time)
		if !w.Equal(g) {
			*diffs = append(*diffs, fmt.Sprintf("%s is %v, want %v", path, g, w))
		}
	case want.Type() == rawType:
		w, g := want.Interface().(json.RawMessage), got.Interface().(json.RawMessage)
		if !sameJSON(w, g) {
			*diffs = append(*diffs, fmt.Sprintf("%s is %s, want %s (as JSON)", path, g, w))
		}
	case want.Kind() == reflect.Struct:
		for i := range want.NumField() {
			name := want.Type().Field(i).Name
			compare(join(path, name), want.Field(i), got.Field(i), diffs)
		}
	case want.Kind() == reflect.Slice:
		if want.Len() != got.Len() {
			*diffs = append(*diffs, fmt.Sprintf("%s has %d elements, want %d: %+v", path, got.Len(), want.Len(), got.Interface()))
			return
		}
		for i := range want.Len() {
			compare(fmt.Sprintf("%s[%d]", path, i), want.Index(i), got.Index(i), diffs)
		}
	case !reflect.DeepEqual(want.Interface(), got.Interface()):
		*diffs = append(*diffs, fmt.Sprintf("%s is %#v, want %#v", path, got.Interface(), want.Interface()))
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// sameJSON compares two JSON texts as values. An empty text equals only
// another empty one.
func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var av, bv any
	if json.Unmarshal(a, &av) != nil || json.Unmarshal(b, &bv) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(av, bv)
}
