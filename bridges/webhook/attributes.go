package webhook

import (
	"encoding/json"
	"strings"

	"github.com/lexigram/events/bridges"
)

// Headers of the outbound bridge's formats that the filters read.
const (
	lxType        = "Lx-Type"            // pass-through
	ceType        = "ce-type"            // CloudEvents binary
	ceAggregate   = "ce-lxaggregatetype" // CloudEvents binary
	cloudEventsCT = "application/cloudevents+json"
)

// attributes gives a message's event type and aggregate type, whichever
// format the outbound bridge used: pass-through headers, CloudEvents
// binary headers, or the CloudEvents structured body (decoded only when
// the headers do not say). The aggregate type is otherwise taken from the
// event store's subject, <prefix>.<aggregate type>.<id>, whose last two
// tokens never hold a dot.
func attributes(m *bridges.Message, needType bool) (eventType, aggType string) {
	eventType = m.Header[lxType]
	if eventType == "" {
		eventType = m.Header[ceType]
	}
	aggType = m.Header[ceAggregate]
	if aggType == "" {
		if i := strings.LastIndexByte(m.Subject, '.'); i > 0 {
			if j := strings.LastIndexByte(m.Subject[:i], '.'); j >= 0 {
				aggType = m.Subject[j+1 : i]
			}
		}
	}
	if eventType == "" && needType && m.Header[bridges.HeaderContentType] == cloudEventsCT {
		var ce struct {
			Type          string `json:"type"`
			AggregateType string `json:"lxaggregatetype"`
		}
		if json.Unmarshal(m.Data, &ce) == nil {
			eventType = ce.Type
			if ce.AggregateType != "" {
				aggType = ce.AggregateType
			}
		}
	}
	return eventType, aggType
}
