package orders

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
)

// refusingNode refuses sagas as a node on a server older than 2.12 does.
type refusingNode struct{ err error }

func (r refusingNode) AddSaga(context.Context, sagas.SagaType) error { return r.err }

// TestSagaLeftOutOnAnOlderServer: a refused saga (ErrUnsupported) is one
// warning line and no error, so the node runs without it; any other
// refusal fails the install.
func TestSagaLeftOutOnAnOlderServer(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	unsupported := platform.Errorf(platform.CodeUnsupported, "saga type %q waits with a deadline, which needs nats-server 2.12: the server is 2.9.10", FulfillmentSaga)
	if err := addSaga(context.Background(), refusingNode{unsupported}, log); err != nil {
		t.Fatalf("addSaga on an older server: %v, want nil", err)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "without the fulfilment saga") || !strings.Contains(lines[0], "2.12") {
		t.Errorf("want one warning naming the saga and why, got:\n%s", logs.String())
	}
	other := errors.New("bucket unavailable")
	if err := addSaga(context.Background(), refusingNode{other}, log); !errors.Is(err, other) {
		t.Errorf("addSaga with another error: got %v, want it returned", err)
	}
}
