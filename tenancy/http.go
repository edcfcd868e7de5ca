package tenancy

import (
	"context"

	lxjs "github.com/lexigram/events/jetstream"
)

// EventStore returns tenant id's store, opening it the first time: it
// makes Tenants the httpapi.Tenants of the node's HTTP API
// (httpapi.Options.Tenants), which reads a request's aggregates and
// stream from the store of the tenant its Lexigram-Tenant header names,
// and dispatches its commands and queries in that tenant's context.
func (ts *Tenants) EventStore(ctx context.Context, id string) (*lxjs.EventStore, error) {
	t, err := ts.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	return t.Store, nil
}
