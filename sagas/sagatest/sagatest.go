package sagatest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
)

// Run runs the suite against stores from open, which each subtest calls
// once for a new, empty store. corrupt writes a record that does not
// decode over the record of the existing instance id, in the store's own
// way; nil skips the subtest that needs it. Run also fails when
// sagas.Instance has a field the suite's sample instance leaves zero, so
// that a new field cannot go untested.
func Run(t *testing.T, open func(t *testing.T) sagas.Store, corrupt func(t *testing.T, s sagas.Store, id string)) {
	t.Helper()
	checkSampleIsComplete(t)
	cases := []struct {
		name string
		test func(t *testing.T, s sagas.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"CreateIsIdempotentPerTypeAndKey", testCreateIdempotent},
		{"ConcurrentCreatesMakeOneInstance", testConcurrentCreate},
		{"SameKeyInTwoTypes", testSameKeyInTwoTypes},
		{"FindByKey", testFindByKey},
		{"Save", testSave},
		{"SaveAtStaleRevision", testSaveStale},
		{"ConcurrentUpdatesLoseNothing", testNoLostUpdates},
		{"UnknownID", testUnknownID},
		{"List", testList},
		{"InvalidNames", testInvalidNames},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.test(t, open(t)) })
	}
	t.Run("Corrupt", func(t *testing.T) {
		if corrupt == nil {
			t.Skip("sagatest: this store has no corrupt function: nothing can write a bad record into it")
		}
		testCorrupt(t, open(t), corrupt)
	})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// create stores in, which must be new.
func create(t *testing.T, s sagas.Store, in sagas.Instance) sagas.Instance {
	t.Helper()
	stored, created, err := s.Create(testContext(t), in)
	if err != nil {
		t.Fatalf("create %s (type %q, key %q): %v", in.ID, in.Type, in.Key, err)
	}
	if !created {
		t.Fatalf("create %s (type %q, key %q): created false for a new type and key; got instance %s", in.ID, in.Type, in.Key, stored.ID)
	}
	if stored.ID != in.ID || stored.Revision == 0 {
		t.Fatalf("create %s: returned ID %q and revision %d: want the ID given and a revision", in.ID, stored.ID, stored.Revision)
	}
	return stored
}

func load(t *testing.T, s sagas.Store, id string) sagas.Instance {
	t.Helper()
	in, err := s.Load(testContext(t), id)
	if err != nil {
		t.Fatalf("load %s: %v", id, err)
	}
	return in
}

// wait waits for wg, failing the test at ctx's deadline rather than
// hanging on a store that ignores it.
func wait(t *testing.T, ctx context.Context, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("goroutines still running at the deadline: %v", ctx.Err())
	}
}

func expectError(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want %v", what, err, want)
	}
}

func testRoundTrip(t *testing.T, s sagas.Store) {
	ctx := testContext(t)
	in := sample("order-saga", "order/o-1")
	want := clone(in)
	stored, created, err := s.Create(ctx, in)
	if err != nil || !created {
		t.Fatalf("create: created %v, error %v; want a new instance", created, err)
	}
	if stored.Revision == 0 {
		t.Error("create returned revision 0: stores set the revision")
	}
	expectSame(t, "the instance Create returned", want, stored)

	// The store keeps a copy: changing what went in or came out changes
	// nothing stored.
	in.Data[2] = 'X'
	in.History[0].Step = "changed"
	stored.Data[2] = 'Y'
	stored.History[1].Outcome = "changed"

	loaded := load(t, s, want.ID)
	expectSame(t, "the loaded instance", want, loaded)
	if loaded.Revision != stored.Revision {
		t.Errorf("loaded revision %d, created %d", loaded.Revision, stored.Revision)
	}
	loaded.Data[2], loaded.History[0].Attempt = 'Z', 99
	found, err := s.FindByKey(ctx, want.Type, want.Key)
	if err != nil {
		t.Fatalf("find by key: %v", err)
	}
	expectSame(t, "the instance found by key", want, found)
	if found.Revision != stored.Revision {
		t.Errorf("found revision %d, created %d", found.Revision, stored.Revision)
	}
	listed, err := s.List(ctx, sagas.Query{})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(listed) != 1 {
		t.Fatalf("listed %d instances, want the 1 created", len(listed))
	}
	expectSame(t, "the listed instance", want, listed[0])
	if listed[0].Revision != stored.Revision {
		t.Errorf("listed revision %d, created %d", listed[0].Revision, stored.Revision)
	}
}

func testCreateIdempotent(t *testing.T, s sagas.Store) {
	ctx := testContext(t)
	first := create(t, s, sample("order-saga", "o-1"))
	again := sample("order-saga", "o-1")
	again.State, again.Data = sagas.Started, json.RawMessage(`{"other":true}`)
	got, created, err := s.Create(ctx, again)
	if err != nil {
		t.Fatalf("second create for the same type and key: %v", err)
	}
	if created {
		t.Error("second create for the same type and key: created true, want false")
	}
	if got.Revision != first.Revision {
		t.Errorf("second create returned revision %d, want the first instance's %d", got.Revision, first.Revision)
	}
	expectSame(t, "the instance the second create returned", first, got)
	all, err := s.List(ctx, sagas.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Errorf("the store holds %d instances, want 1", len(all))
	}
}

func testConcurrentCreate(t *testing.T, s sagas.Store) {
	ctx := testContext(t)
	const n = 32
	type result struct {
		in      sagas.Instance
		created bool
		err     error
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			in := sample("order-saga", "contested")
			in.Step = i
			<-start
			results[i].in, results[i].created, results[i].err = s.Create(ctx, in)
		})
	}
	close(start)
	wait(t, ctx, &wg)

	var winners []int
	ids := map[string]int{}
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("create by racer %d: %v", i, r.err)
		}
		if r.created {
			winners = append(winners, i)
		}
		ids[r.in.ID]++
	}
	if len(winners) != 1 {
		t.Fatalf("%d creates report created true (racers %v), want exactly 1", len(winners), winners)
	}
	if len(ids) != 1 {
		t.Fatalf("the creates returned %d different IDs (%v), want 1", len(ids), ids)
	}
	winner := results[winners[0]].in
	if want := sagas.InstanceID("order-saga", "contested"); winner.ID != want {
		t.Errorf("the instance has ID %q, want the InstanceID %q", winner.ID, want)
	}
	stored := load(t, s, winner.ID)
	for i, r := range results {
		if r.in.Revision != stored.Revision || r.in.Step != stored.Step {
			t.Errorf("racer %d got revision %d and step %d, the store holds revision %d and step %d", i, r.in.Revision, r.in.Step, stored.Revision, stored.Step)
		}
	}
	if stored.Step != winner.Step {
		t.Errorf("the store holds the data of step %d, but the create that reported created true stored step %d", stored.Step, winner.Step)
	}
	all, err := s.List(ctx, sagas.Query{Type: "order-saga"})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Errorf("the store holds %d instances of the type, want 1", len(all))
	}
}

func testSameKeyInTwoTypes(t *testing.T, s sagas.Store) {
	ctx := testContext(t)
	create(t, s, sample("alpha", "shared"))
	create(t, s, sample("beta", "shared"))
	for _, typ := range []string{"alpha", "beta"} {
		id := sagas.InstanceID(typ, "shared")
		in, err := s.FindByKey(ctx, typ, "shared")
		if err != nil {
			t.Fatalf("find %s/shared: %v", typ, err)
		}
		if in.ID != id || in.Type != typ {
			t.Errorf("find %s/shared: got instance %s of type %q, want %s", typ, in.ID, in.Type, id)
		}
	}
}

func testFindByKey(t *testing.T, s sagas.Store) {
	ctx := testContext(t)
	// Keys of any text: the ones a key-value store must escape, two that
	// a careless escape would merge, and the longest a store must keep
	// (512 bytes that each need escaping).
	keys := []string{"o.1", "a b", "*", ">", "a.b", "a=2Eb", "k.order-saga.x", "ключ/№ 1", strings.Repeat("/", 512)}
	for _, key := range keys {
		create(t, s, sample("order-saga", key))
	}
	for _, key := range keys {
		in, err := s.FindByKey(ctx, "order-saga", key)
		if err != nil {
			t.Errorf("find key %q: %v", key, err)
			continue
		}
		if want := sagas.InstanceID("order-saga", key); in.ID != want || in.Key != key || in.Revision == 0 {
			t.Errorf("find key %q: got instance %s with key %q and revision %d, want %s", key, in.ID, in.Key, in.Revision, want)
		}
	}
	_, err := s.FindByKey(ctx, "order-saga", "o.2")
	expectError(t, "find an unknown key", err, platform.ErrSagaNotFound)
	_, err = s.FindByKey(ctx, "other-saga", "o.1")
	expectError(t, "find a key of another type", err, platform.ErrSagaNotFound)
}

func testSave(t *testing.T, s sagas.Store) {
	ctx := testContext(t)
	stored := create(t, s, sample("order-saga", "o-1"))
	next := clone(stored)
	next.State, next.Step, next.Attempt, next.Generation = sagas.Completed, 3, 1, 8
	next.Data = json.RawMessage(`{"order":"o-1","paid":true}`)
	next.Error, next.Owner = "", ""
	next.History = append(next.History, sagas.StepRecord{Step: "ship", Attempt: 1, Started: time.Now(), Took: time.Millisecond, Outcome: "ok"})
	next.Updated = next.Updated.Add(time.Hour)
	rev, err := s.Save(ctx, next)
	if err != nil {
		t.Fatalf("save at the current revision: %v", err)
	}
	if rev <= stored.Revision {
		t.Errorf("save at revision %d returned revision %d: revisions grow", stored.Revision, rev)
	}
	loaded := load(t, s, next.ID)
	expectSame(t, "the saved instance loaded", next, loaded)
	if loaded.Revision != rev {
		t.Errorf("loaded revision %d, Save returned %d", loaded.Revision, rev)
	}
	loaded.Step = 4
	rev2, err := s.Save(ctx, loaded)
	if err != nil {
		t.Fatalf("save at the revision just loaded: %v", err)
	}
	if rev2 <= rev {
		t.Errorf("save at revision %d returned revision %d: revisions grow", rev, rev2)
	}
	found, err := s.FindByKey(ctx, "order-saga", "o-1")
	if err != nil {
		t.Fatal(err)
	}
	if found.Step != 4 || found.Revision != rev2 {
		t.Errorf("found step %d at revision %d, want the saved step 4 at revision %d", found.Step, found.Revision, rev2)
	}
}

func testSaveStale(t *testing.T, s sagas.Store) {
	ctx := testContext(t)
	stored := create(t, s, sample("order-saga", "o-1"))
	moved := clone(stored)
	moved.Step = 1
	rev, err := s.Save(ctx, moved)
	if err != nil {
		t.Fatal(err)
	}
	stale := clone(stored)
	stale.Step = 99
	_, err = s.Save(ctx, stale)
	expectError(t, "save at a stale revision", err, platform.ErrSagaConflict)
	if err != nil {
		for _, want := range []string{stale.ID, strconv.FormatUint(stored.Revision, 10), strconv.FormatUint(rev, 10)} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("conflict error %q does not name %q (the instance, the revision given and the one stored)", err, want)
			}
		}
	}
	for _, r := range []uint64{0, rev + 1000} {
		stale.Revision = r
		_, err = s.Save(ctx, stale)
		expectError(t, fmt.Sprintf("save at revision %d, which the instance never had", r), err, platform.ErrSagaConflict)
	}
	loaded := load(t, s, stored.ID)
	if loaded.Step != 1 || loaded.Revision != rev {
		t.Errorf("after the refused saves the store holds step %d at revision %d, want step 1 at revision %d", loaded.Step, loaded.Revision, rev)
	}
}

func testNoLostUpdates(t *testing.T, s sagas.Store) {
	ctx := testContext(t)
	const workers, increments = 16, 20
	in := sample("counter-saga", "c-1")
	in.Data = json.RawMessage(`{"n":0}`)
	create(t, s, in)

	var saves, conflicts atomic.Int64
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range increments {
				if err := increment(ctx, s, in.ID, &conflicts); err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
				saves.Add(1)
			}
		})
	}
	wait(t, ctx, &wg)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var data struct{ N int }
	final := load(t, s, in.ID)
	if err := json.Unmarshal(final.Data, &data); err != nil {
		t.Fatalf("counter data %s: %v", final.Data, err)
	}
	if data.N != workers*increments || saves.Load() != workers*increments {
		t.Errorf("counter %d after %d successful saves, want %d", data.N, saves.Load(), workers*increments)
	}
	t.Logf("%d conflicts retried", conflicts.Load())
}

// increment adds 1 to the counter in the instance's data, reloading and
// trying again while other writers get in first.
func increment(ctx context.Context, s sagas.Store, id string, conflicts *atomic.Int64) error {
	const attempts = 10_000
	for range attempts {
		in, err := s.Load(ctx, id)
		if err != nil {
			return err
		}
		var data struct{ N int }
		if err := json.Unmarshal(in.Data, &data); err != nil {
			return fmt.Errorf("counter data %s: %w", in.Data, err)
		}
		data.N++
		if in.Data, err = json.Marshal(data); err != nil {
			return err
		}
		_, err = s.Save(ctx, in)
		if !errors.Is(err, platform.ErrSagaConflict) {
			return err
		}
		conflicts.Add(1)
	}
	return fmt.Errorf("%d saves in a row met a conflict", attempts)
}

func testUnknownID(t *testing.T, s sagas.Store) {
	ctx := testContext(t)
	_, err := s.Load(ctx, "no-such-instance")
	expectError(t, "load an unknown ID", err, platform.ErrSagaNotFound)
	ghost := sample("order-saga", "o-1")
	for _, r := range []uint64{0, 1} {
		ghost.Revision = r
		_, err = s.Save(ctx, ghost)
		expectError(t, fmt.Sprintf("save an unknown ID at revision %d", r), err, platform.ErrSagaNotFound)
	}
	_, err = s.Load(ctx, ghost.ID)
	expectError(t, "load the unknown ID after the refused saves", err, platform.ErrSagaNotFound)
	_, err = s.FindByKey(ctx, ghost.Type, ghost.Key)
	expectError(t, "find the key of the refused saves", err, platform.ErrSagaNotFound)
}

func testList(t *testing.T, s sagas.Store) {
	ctx := testContext(t)
	const n = 25
	states := []sagas.State{sagas.Running, sagas.Completed, sagas.Failed}
	var all []sagas.Instance
	for i := range n {
		in := sample("alpha", fmt.Sprintf("k-%d", i))
		if i%2 == 1 {
			in.Type, in.ID = "beta", sagas.InstanceID("beta", in.Key)
		}
		in.State = states[i%3]
		all = append(all, in)
	}
	// Created out of ID order, so that List has to sort.
	for i := range n {
		create(t, s, all[i*7%n])
	}
	slices.SortFunc(all, func(a, b sagas.Instance) int { return strings.Compare(a.ID, b.ID) })
	byID := map[string]sagas.Instance{}
	sorted := make([]string, 0, n)
	for _, in := range all {
		byID[in.ID] = in
		sorted = append(sorted, in.ID)
	}
	expect := func(q sagas.Query) []string {
		var ids []string
		for _, in := range all {
			if in.ID > q.After && (q.Type == "" || in.Type == q.Type) && (len(q.States) == 0 || slices.Contains(q.States, in.State)) {
				ids = append(ids, in.ID)
			}
		}
		if q.Limit > 0 && len(ids) > q.Limit {
			ids = ids[:q.Limit]
		}
		return ids
	}
	list := func(q sagas.Query) []sagas.Instance {
		t.Helper()
		got, err := s.List(ctx, q)
		if err != nil {
			t.Fatalf("list %+v: %v", q, err)
		}
		return got
	}
	for _, q := range []sagas.Query{
		{},
		{Type: "alpha"},
		{Type: "beta"},
		{Type: "gamma"},
		{States: []sagas.State{sagas.Running}},
		{States: []sagas.State{sagas.Running, sagas.Failed}},
		{States: []sagas.State{sagas.Parked}},
		{Type: "alpha", States: []sagas.State{sagas.Completed}},
		{After: sorted[12]},
		{After: sorted[12] + "x"},
		{After: sorted[24]},
		{After: "g"},
		{Limit: 1},
		{Limit: 25},
		{Limit: 100},
		{Type: "beta", States: []sagas.State{sagas.Failed, sagas.Running}, After: sorted[3], Limit: 2},
	} {
		if got, want := ids(list(q)), expect(q); !slices.Equal(got, want) {
			t.Errorf("list %+v: got %v, want %v", q, got, want)
		}
	}
	for _, in := range list(sagas.Query{}) {
		expectSame(t, "listed "+in.ID, byID[in.ID], in)
		if stored := load(t, s, in.ID); in.Revision != stored.Revision {
			t.Errorf("listed %s at revision %d, loaded at %d", in.ID, in.Revision, stored.Revision)
		}
	}
	for _, q := range []sagas.Query{{Limit: 10}, {Type: "alpha", Limit: 4}, {States: []sagas.State{sagas.Completed}, Limit: 3}} {
		var paged []string
		var sizes []int
		for page := 0; ; page++ {
			if page > n {
				t.Fatalf("page %+v: still paging after %d pages", q, page)
			}
			got := ids(list(q))
			sizes = append(sizes, len(got))
			paged = append(paged, got...)
			if len(got) < q.Limit {
				break
			}
			q.After = got[len(got)-1]
		}
		q.After, q.Limit = "", 0
		if want := expect(q); !slices.Equal(paged, want) {
			t.Errorf("paged through %+v in pages of %v: got %v, want %v", q, sizes, paged, want)
		}
	}
	_, err := s.List(ctx, sagas.Query{Limit: -1})
	expectError(t, "list with a negative limit", err, platform.ErrInvalidArgument)
}

func ids(ins []sagas.Instance) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.ID
	}
	return out
}

func testInvalidNames(t *testing.T, s sagas.Store) {
	ctx := testContext(t)
	badIDs := []string{"", "a b", "a.b", "*", ">", "a/b", "ä", strings.Repeat("x", 257)}
	badTypes := []string{"", "order.saga", "order saga", "*", ">", strings.Repeat("t", 65)}
	badKeys := []string{"", strings.Repeat("k", 513), "\xff", "a\x00b"}
	for _, id := range append(badIDs, "not-the-instance-id") {
		in := sample("order-saga", "o-1")
		in.ID = id
		_, _, err := s.Create(ctx, in)
		expectError(t, fmt.Sprintf("create with ID %q", id), err, platform.ErrInvalidArgument)
		if !slices.Contains(badIDs, id) {
			continue // a valid ID of no instance: Load and Save find nothing
		}
		_, err = s.Load(ctx, id)
		expectError(t, fmt.Sprintf("load ID %q", id), err, platform.ErrInvalidArgument)
		bad := sample("order-saga", "o-1")
		bad.ID, bad.Revision = id, 1
		_, err = s.Save(ctx, bad)
		expectError(t, fmt.Sprintf("save ID %q", id), err, platform.ErrInvalidArgument)
	}
	for _, typ := range badTypes {
		_, _, err := s.Create(ctx, sample(typ, "o-1"))
		expectError(t, fmt.Sprintf("create with type %q", typ), err, platform.ErrInvalidArgument)
		_, err = s.FindByKey(ctx, typ, "o-1")
		expectError(t, fmt.Sprintf("find with type %q", typ), err, platform.ErrInvalidArgument)
	}
	for _, key := range badKeys {
		_, _, err := s.Create(ctx, sample("order-saga", key))
		expectError(t, fmt.Sprintf("create with key %q", key), err, platform.ErrInvalidArgument)
		_, err = s.FindByKey(ctx, "order-saga", key)
		expectError(t, fmt.Sprintf("find with key %q", key), err, platform.ErrInvalidArgument)
	}
	bad := sample("order-saga", "o-1")
	bad.Data = json.RawMessage(`{"not json`)
	_, _, err := s.Create(ctx, bad)
	expectError(t, "create with Data that is not JSON", err, platform.ErrInvalidArgument)

	all, err := s.List(ctx, sagas.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 0 {
		t.Errorf("the refused creates stored %v", ids(all))
	}
	// The longest names are fine, and the store still works after all
	// that was refused.
	longest := sample(strings.Repeat("t", 64), strings.Repeat(".", 512))
	create(t, s, longest)
	if got := load(t, s, longest.ID); got.Key != longest.Key || got.Type != longest.Type {
		t.Errorf("the instance with the longest names came back with type %q and key %q", got.Type, got.Key)
	}
}

func testCorrupt(t *testing.T, s sagas.Store, corrupt func(t *testing.T, s sagas.Store, id string)) {
	ctx := testContext(t)
	good := create(t, s, sample("order-saga", "good-key"))
	bad := create(t, s, sample("order-saga", "bad-key")).ID
	corrupt(t, s, bad)

	_, err := s.Load(ctx, bad)
	var ce *sagas.CorruptError
	if !errors.Is(err, platform.ErrCorruptSaga) || !errors.As(err, &ce) {
		t.Fatalf("load the corrupt instance: got %v, want a *sagas.CorruptError matching platform.ErrCorruptSaga", err)
	}
	if ce.ID != bad || ce.Revision == 0 || (ce.Type != "" && ce.Type != "order-saga") {
		t.Errorf("corrupt error names instance %q of type %q at revision %d, want instance %s of type order-saga (or \"\") at a revision", ce.ID, ce.Type, ce.Revision, bad)
	}
	_, err = s.FindByKey(ctx, "order-saga", "bad-key")
	expectError(t, "find the corrupt instance by key", err, platform.ErrCorruptSaga)
	_, created, err := s.Create(ctx, sample("order-saga", "bad-key"))
	expectError(t, "create for the key of the corrupt instance", err, platform.ErrCorruptSaga)
	if created {
		t.Error("create for the key of the corrupt instance reported created true")
	}

	listed, err := s.List(ctx, sagas.Query{})
	if err != nil {
		t.Fatalf("list with a corrupt record: %v", err)
	}
	want := []string{bad, good.ID}
	slices.Sort(want)
	if got := ids(listed); !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	corruptAt, goodAt := 0, 1
	if want[0] != bad {
		corruptAt, goodAt = 1, 0
	}
	if p := listed[corruptAt]; p.State != sagas.Parked || p.Revision != ce.Revision || p.Error == "" {
		t.Errorf("listed the corrupt instance in state %s at revision %d with error %q, want %s at %d with the decoding error", p.State, p.Revision, p.Error, sagas.Parked, ce.Revision)
	}
	expectSame(t, "the sound instance listed beside the corrupt one", good, listed[goodAt])

	// The manager parks it by saving over the corrupt record.
	rev, err := s.Save(ctx, ce.Parked())
	if err != nil {
		t.Fatalf("save the parked instance at the corrupt record's revision %d: %v", ce.Revision, err)
	}
	parked := load(t, s, bad)
	if parked.State != sagas.Parked || parked.Revision != rev || rev <= ce.Revision {
		t.Errorf("after parking: state %s at revision %d, Save returned %d; want %s at a revision above %d", parked.State, parked.Revision, rev, sagas.Parked, ce.Revision)
	}
	listed, err = s.List(ctx, sagas.Query{States: []sagas.State{sagas.Parked}})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(listed); !slices.Equal(got, []string{bad}) {
		t.Errorf("listed parked instances %v, want [%s]", got, bad)
	}
}
