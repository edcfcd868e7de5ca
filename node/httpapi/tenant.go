package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/lexigram/events/handlers"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// Tenants gives the API each tenant's event store (Options.Tenants);
// *tenancy.Tenants is one.
type Tenants interface {
	EventStore(ctx context.Context, tenant string) (*lxjs.EventStore, error)
}

// TenantHeader names a request's tenant: the header the buses carry the
// tenant in across processes (handlers.HeaderTenant).
const TenantHeader = handlers.HeaderTenant

// tenantParam names the tenant of GET /api/stream where a browser cannot
// set the header on a WebSocket.
const tenantParam = "tenant"

// tenantFix says how to name a tenant.
const tenantFix = "send the tenant as the " + TenantHeader + " header: 1 to 64 letters, digits, '-' and '_'"

// tenanted reads the request's tenant (the Lexigram-Tenant header, or the
// tenant parameter of GET /api/stream) into its context, where the buses
// carry it to the handlers and the API reads the tenant's store.
//
// A malformed tenant is 400. With Options.RequireTenant a request to a
// per-tenant route (commands, queries, aggregates, the stream) without
// one is 400 too. The node-wide listings (streams, projections, sagas,
// dead letters) are not per tenant: a request naming a tenant gets 403
// there rather than another tenant's names or the node's data; so do a
// query's wait-for, which waits on the node's projections, and, without
// Options.Tenants, the routes that read the store.
func (a *api) tenanted(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/openapi.json" {
			next.ServeHTTP(w, r)
			return
		}
		vals := r.Header.Values(TenantHeader)
		if len(vals) > 1 {
			writeProblem(w, r, badRequest(TenantHeader, fmt.Sprintf("header %s is given %d times", TenantHeader, len(vals)), tenantFix+", once"))
			return
		}
		named, tenant, from := len(vals) == 1, "", "header "+TenantHeader
		if named {
			tenant = vals[0]
		} else if r.URL.Path == "/api/stream" && r.URL.Query().Has(tenantParam) {
			named, tenant, from = true, r.URL.Query().Get(tenantParam), "parameter "+tenantParam
		}
		perTenant, reads := tenantRoute(r.URL.Path)
		if !named {
			if a.opts.RequireTenant && perTenant {
				writeProblem(w, r, badRequest(TenantHeader, fmt.Sprintf("this node requires a tenant, and %s %s names none", r.Method, r.URL.Path), tenantFix))
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if err := platform.ValidTenant(tenant); err != nil {
			writeProblem(w, r, badRequest(TenantHeader, fmt.Sprintf("%s: %v", from, err), tenantFix))
			return
		}
		switch {
		case !perTenant:
			writeProblem(w, r, tenantForbidden(fmt.Sprintf("%s %s lists what the node holds, not one tenant's: it is not served per tenant", r.Method, r.URL.Path),
				"send it without the "+TenantHeader+" header, as an operator"))
		case reads && a.opts.Tenants == nil:
			writeProblem(w, r, tenantForbidden(fmt.Sprintf("the request names tenant %q, and this API has no tenants' stores to read it from", tenant),
				"set httpapi.Options.Tenants (a *tenancy.Tenants), or send the request without the "+TenantHeader+" header"))
		case strings.HasPrefix(r.URL.Path, "/api/queries/") && r.URL.Query().Has("wait-for"):
			writeProblem(w, r, tenantForbidden(fmt.Sprintf("wait-for waits on the node's projections, not tenant %q's", tenant),
				"drop wait-for and retry the query until it shows the command's effect"))
		default:
			next.ServeHTTP(w, r.WithContext(platform.WithTenant(r.Context(), tenant)))
		}
	})
}

// tenantRoute says whether a path is served per tenant, and whether it
// reads the store.
func tenantRoute(path string) (perTenant, reads bool) {
	switch {
	case strings.HasPrefix(path, "/api/aggregates/"), path == "/api/stream":
		return true, true
	case strings.HasPrefix(path, "/api/commands/"), strings.HasPrefix(path, "/api/queries/"):
		return true, false
	case path == "/api/streams", path == "/api/projections", strings.HasPrefix(path, "/api/projections/"),
		path == "/api/sagas", path == "/api/dlq":
		return false, false
	}
	return true, false // no such route: the mux answers 404
}

func tenantForbidden(detail, fix string) *problem {
	return &problem{Status: http.StatusForbidden, Code: platform.CodeInvalidArgument, Field: TenantHeader, Detail: detail, Fix: fix}
}

// storeOf is the event store a request reads: its tenant's, or the
// node's for a request that names none.
func (a *api) storeOf(ctx context.Context) (*lxjs.EventStore, error) {
	tenant := platform.Tenant(ctx)
	if tenant == "" || a.opts.Tenants == nil {
		return a.n.Store(), nil
	}
	s, err := a.opts.Tenants.EventStore(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("open tenant %q's store: %w", tenant, err)
	}
	return s, nil
}
