package durable

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lexigram/events/platform"
)

type dep struct {
	Account string
	Amount  int64
	Memo    string
}

func BenchmarkDecode(b *testing.B) {
	reg := platform.NewRegistry()
	platform.MustRegister[dep](reg, "bench.deposited", 1)
	body, _ := platform.Msgpack.Marshal(dep{Account: "acct-0000001", Amount: 100, Memo: strings.Repeat("m", 220)})
	h := nats.Header{"Nats-Msg-Id": {"01JABCDEFGHJKMNPQRSTVWXYZ0"}, "Lx-Type": {"bench.deposited"}, "Lx-Schema": {"1"}, "Lx-Codec": {"msgpack"}, "Lx-Version": {"17"}}
	d := decoder{prefix: "lxbench.abc.1.", registry: reg}
	tm := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		e, err := d.decode("lxbench.abc.1.account.acct-0000001", 5, tm, h, body)
		if err != nil {
			b.Fatal(err)
		}
		ctx := platform.WithCorrelationID(context.Background(), e.ID)
		ctx = platform.WithCausationID(ctx, e.ID)
		_ = ctx
	}
}
