package state

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/codes"
)

// step is one report in a scripted sequence and what the stream shows
// after it: its status, statusReason code ("" for none) and other reasons.
type step struct {
	fault   codes.Code  // Fault(fault, ...) when set
	recover codes.Owner // else Recover(recover)
	rejects bool        // the report is refused (ErrInvalidTransition)
	status  Status
	shown   codes.Code
	others  []codes.Code
}

func (st step) apply(s *Stream, i int) error {
	if st.fault != "" {
		return s.Fault(st.fault, fmt.Errorf("%s at step %d", st.fault, i))
	}
	return s.Recover(st.recover)
}

func TestStreamOverlappingCauses(t *testing.T) {
	const (
		thr    = codes.KinesisThroughputExceeded
		denied = codes.KinesisAccessDenied
		role   = codes.RoleAccessDenied
		key    = codes.ClusterCMKInaccessible
		source = codes.SourceUnavailable
		inter  = codes.InternalError
	)
	tests := []struct {
		name  string
		steps []step
	}{
		{"capture recovers, the sink's code stays", []step{
			{fault: thr, status: Impaired, shown: thr},
			{fault: source, status: Impaired, shown: source, others: []codes.Code{thr}},
			{recover: codes.OwnerCapture, status: Impaired, shown: thr},
			{recover: codes.OwnerSink, status: Active},
		}},
		{"a recovered source does not clear a Kinesis denial", []step{
			{fault: denied, status: Impaired, shown: denied},
			{recover: codes.OwnerCapture, status: Impaired, shown: denied},
			{recover: codes.OwnerClusterKey, status: Impaired, shown: denied},
			{recover: codes.OwnerSink, status: Active},
		}},
		{"the key's code outranks the sink's, in either order", []step{
			{fault: thr, status: Impaired, shown: thr},
			{fault: key, status: Impaired, shown: key, others: []codes.Code{thr}},
			{fault: thr, status: Impaired, shown: key, others: []codes.Code{thr}},
			{recover: codes.OwnerSink, status: Impaired, shown: key},
			{fault: thr, status: Impaired, shown: key, others: []codes.Code{thr}},
			{recover: codes.OwnerClusterKey, status: Impaired, shown: thr},
			{recover: codes.OwnerSink, status: Active},
		}},
		{"one owner, two codes: its recovery clears both", []step{
			{fault: thr, status: Impaired, shown: thr},
			{fault: denied, status: Impaired, shown: denied, others: []codes.Code{thr}},
			{recover: codes.OwnerSink, status: Active},
		}},
		{"every owner, recoveries in another order", []step{
			{fault: inter, status: Impaired, shown: inter},
			{fault: thr, status: Impaired, shown: thr, others: []codes.Code{inter}},
			{fault: source, status: Impaired, shown: source, others: []codes.Code{thr, inter}},
			{fault: role, status: Impaired, shown: role, others: []codes.Code{source, thr, inter}},
			{fault: key, status: Impaired, shown: key, others: []codes.Code{role, source, thr, inter}},
			{recover: codes.OwnerRole, status: Impaired, shown: key, others: []codes.Code{source, thr, inter}},
			{recover: codes.OwnerPipeline, status: Impaired, shown: key, others: []codes.Code{source, thr}},
			{recover: codes.OwnerClusterKey, status: Impaired, shown: source, others: []codes.Code{thr}},
			{recover: codes.OwnerSink, status: Impaired, shown: source},
			{recover: codes.OwnerCapture, status: Active},
		}},
		{"a fatal code fails the stream and keeps the others", []step{
			{fault: source, status: Impaired, shown: source},
			{fault: codes.KinesisStreamNotFound, status: Failed, shown: codes.KinesisStreamNotFound, others: []codes.Code{source}},
			{recover: codes.OwnerCapture, rejects: true, status: Failed, shown: codes.KinesisStreamNotFound, others: []codes.Code{source}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Active, time.Hour)
			for i, st := range tt.steps {
				*h.clock = h.clock.Add(time.Second)
				err := st.apply(h.s, i)
				if st.rejects != errors.Is(err, ErrInvalidTransition) || !st.rejects && err != nil {
					t.Fatalf("step %d: err = %v", i, err)
				}
				got := h.s.View()
				want := append([]codes.Code{st.shown}, st.others...)
				if st.shown == "" {
					want = nil
				}
				if got.Status != st.status || !slices.Equal(got.Codes(), want) {
					t.Fatalf("step %d: %s %v, want %s %v", i, got.Status, got.Codes(), st.status, want)
				}
				// The log names every outstanding code, which GetStream
				// does not show.
				if v, ok := h.logs.lastAttr(logKeyOutstanding); len(want) > 1 && (!ok || fmt.Sprint(v.Any()) != fmt.Sprint(want)) {
					t.Errorf("step %d: log names %v outstanding, want %v", i, v, want)
				}
			}
		})
	}
}

// TestStreamTransientFaultWhileCreating: while CREATING, a code that a
// retry can clear leaves the stream CREATING with the cause as its reason
// (logged once, not saved) until its owner recovers or the stream is
// created; a denial or a fatal code fails it.
func TestStreamTransientFaultWhileCreating(t *testing.T) {
	tests := []struct {
		code codes.Code
		want Status
	}{
		{codes.KinesisThroughputExceeded, Creating},
		{codes.InternalError, Creating},
		{codes.SourceUnavailable, Creating},
		{codes.SourcePrerequisiteUnmet, Creating},
		{codes.KinesisOversizeRecord, Creating},
		{codes.KinesisAccessDenied, Failed},
		{codes.KinesisKMSAccessDenied, Failed},
		{codes.RoleAccessDenied, Failed},
		{codes.ClusterCMKInaccessible, Failed},
		{codes.KinesisStreamNotFound, Failed},
		{codes.SourceSlotLost, Failed},
	}
	for _, tt := range tests {
		t.Run(string(tt.code), func(t *testing.T) {
			h := newHarness(t, Creating, time.Hour)
			if err := h.s.Fault(tt.code, errors.New("rate exceeded")); err != nil {
				t.Fatal(err)
			}
			got := h.s.View()
			if got.Status != tt.want {
				t.Fatalf("status %s, want %s", got.Status, tt.want)
			}
			if tt.want == Failed {
				if got.StatusReason == nil || got.StatusReason.Code != tt.code {
					t.Fatalf("reason %+v", got.StatusReason)
				}
				return
			}
			// CREATING shows the cause (cdcd's extension), logs it once,
			// and keeps it in memory only.
			if got.StatusReason == nil || got.StatusReason.Code != tt.code || h.store.count() != 0 || len(h.logs.messages()) != 1 {
				t.Fatalf("reason %+v, %d saves, logs %q", got.StatusReason, h.store.count(), h.logs.messages())
			}
			if err := h.s.Fault(tt.code, errors.New("again")); err != nil || len(h.logs.messages()) != 1 {
				t.Fatalf("repeated fault: %v, logs %q", err, h.logs.messages())
			}
			if err := h.s.Recover(tt.code.Owner()); err != nil {
				t.Fatal(err)
			}
			if got := h.s.View(); got.Status != Creating || got.StatusReason != nil {
				t.Fatalf("after its owner's recovery: %s %+v", got.Status, got.StatusReason)
			}
			_ = h.s.Fault(tt.code, errors.New("once more"))
			if err := h.s.Created(); err != nil {
				t.Fatal(err)
			}
			if got := h.s.View(); got.Status != Active || got.StatusReason != nil {
				t.Fatalf("after Created: %s %+v", got.Status, got.StatusReason)
			}
		})
	}
}

// TestStreamRestartReevaluatesCauses: every outstanding cause survives a
// restart with its first-seen time, and after it each owner clears only
// its own; a fault repeated after the restart keeps the old time.
func TestStreamRestartReevaluatesCauses(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	rec := testRecord(Active)
	if err := s.Save(rec); err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	opts := Options{Store: s, Now: func() time.Time { return clock }}
	st, err := NewStream(rec, opts)
	if err != nil {
		t.Fatal(err)
	}
	first := map[codes.Code]time.Time{}
	for _, c := range []codes.Code{codes.KinesisThroughputExceeded, codes.SourceUnavailable, codes.ClusterCMKInaccessible} {
		clock = clock.Add(time.Minute)
		first[c] = clock
		if err := st.Fault(c, errors.New(string(c)+" before the restart")); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.Close()

	s2 := openStore(t, dir)
	saved, err := s2.Load(testStream)
	if err != nil {
		t.Fatal(err)
	}
	opts.Store = s2
	st2, err := NewStream(saved, opts)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, status Status, want ...codes.Code) {
		t.Helper()
		got := st2.View()
		if got.Status != status || !slices.Equal(got.Codes(), want) {
			t.Fatalf("%s: %s %v, want %s %v", what, got.Status, got.Codes(), status, want)
		}
		for _, r := range append(slices.Clone(got.OtherReasons), derefReason(got.StatusReason)...) {
			if !r.UpdatedAt.Equal(first[r.Code]) {
				t.Errorf("%s: %s updatedAt %v, want %v (first seen)", what, r.Code, r.UpdatedAt, first[r.Code])
			}
		}
	}
	check("after the restart", Impaired, codes.ClusterCMKInaccessible, codes.SourceUnavailable, codes.KinesisThroughputExceeded)
	clock = clock.Add(time.Hour)
	_ = st2.Recover(codes.OwnerClusterKey)
	check("key check passed", Impaired, codes.SourceUnavailable, codes.KinesisThroughputExceeded)
	_ = st2.Fault(codes.SourceUnavailable, errors.New("still refused"))
	check("source still down", Impaired, codes.SourceUnavailable, codes.KinesisThroughputExceeded)
	if msg := st2.View().StatusReason.Message; msg != "still refused (see docs/runbook.md#source_unavailable)" {
		t.Errorf("message %q, want the latest", msg)
	}
	_ = st2.Recover(codes.OwnerSink)
	check("sink delivered", Impaired, codes.SourceUnavailable)
	_ = st2.Recover(codes.OwnerCapture)
	check("capture streams", Active)
	if got, _ := s2.Load(testStream); got.Status != Active || got.StatusReason != nil || got.OtherReasons != nil {
		t.Errorf("saved %s %+v %+v", got.Status, got.StatusReason, got.OtherReasons)
	}
}

func derefReason(r *Reason) []Reason {
	if r == nil {
		return nil
	}
	return []Reason{*r}
}

// TestStoreOtherReasons: the file carries otherReasons beside the
// statusReason, and a file written before they existed still loads.
func TestStoreOtherReasons(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	rec := fullRecord()
	rec.OtherReasons = []Reason{{Code: codes.SourceUnavailable, Message: "refused", UpdatedAt: rec.Definition.CreationTime}}
	if err := s.Save(rec); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "streams", testStream+".json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"otherReasons": [`) || !strings.Contains(string(b), `"error": "SOURCE_UNAVAILABLE"`) {
		t.Fatalf("file lacks otherReasons:\n%s", b)
	}
	_ = s.Close()

	old := strings.Replace(string(b), string(b[strings.Index(string(b), `  "otherReasons"`):strings.Index(string(b), `  "checkpoint"`)]), "", 1)
	if strings.Contains(old, "otherReasons") {
		t.Fatal("could not write a file without otherReasons")
	}
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := openStore(t, dir).Load(testStream)
	if err != nil {
		t.Fatalf("a file without otherReasons: %v", err)
	}
	if got.Status != Impaired || got.StatusReason.Code != codes.KinesisAccessDenied || got.OtherReasons != nil {
		t.Fatalf("loaded %s %+v %+v", got.Status, got.StatusReason, got.OtherReasons)
	}
}

// model is the lifecycle of outstanding causes written independently of
// the implementation: its own severity ranks, owners and rules.
type model struct {
	status Status
	out    map[codes.Code]Reason // outstanding causes, UpdatedAt = first seen
	failed *Reason               // the statusReason once FAILED
}

var modelRank = map[codes.Code]int{
	codes.KinesisStreamNotFound: 11, codes.SourceSlotLost: 10, codes.ClusterCMKInaccessible: 9,
	codes.RoleAccessDenied: 8, codes.KinesisAccessDenied: 7, codes.KinesisKMSAccessDenied: 6,
	codes.SourcePrerequisiteUnmet: 5, codes.KinesisOversizeRecord: 4, codes.SourceUnavailable: 3,
	codes.KinesisThroughputExceeded: 2, codes.InternalError: 1,
}

var modelOwner = map[codes.Code]codes.Owner{
	codes.KinesisStreamNotFound: codes.OwnerSink, codes.SourceSlotLost: codes.OwnerCapture,
	codes.ClusterCMKInaccessible: codes.OwnerClusterKey, codes.RoleAccessDenied: codes.OwnerRole,
	codes.KinesisAccessDenied: codes.OwnerSink, codes.KinesisKMSAccessDenied: codes.OwnerSink,
	codes.KinesisOversizeRecord: codes.OwnerSink, codes.SourceUnavailable: codes.OwnerCapture,
	codes.KinesisThroughputExceeded: codes.OwnerSink, codes.InternalError: codes.OwnerPipeline,
	codes.SourcePrerequisiteUnmet: codes.OwnerCapture,
}

func modelFatal(c codes.Code) bool {
	return c == codes.KinesisStreamNotFound || c == codes.SourceSlotLost
}

func modelFailsCreating(c codes.Code) bool {
	switch c {
	case codes.RoleAccessDenied, codes.KinesisAccessDenied, codes.KinesisKMSAccessDenied, codes.ClusterCMKInaccessible:
		return true
	}
	return modelFatal(c)
}

// byRank lists the outstanding causes except skip, most severe first.
func (m *model) byRank(skip codes.Code) []Reason {
	var rs []Reason
	for c, r := range m.out {
		if c != skip {
			rs = append(rs, r)
		}
	}
	slices.SortFunc(rs, func(a, b Reason) int { return modelRank[b.Code] - modelRank[a.Code] })
	return rs
}

// shows is what the stream must show: its statusReason and other reasons.
func (m *model) shows() (*Reason, []Reason) {
	switch m.status {
	case Failed:
		return m.failed, m.byRank(m.failed.Code)
	case Impaired, Creating:
		rs := m.byRank("")
		if len(rs) == 0 {
			return nil, nil
		}
		return &rs[0], rs[1:]
	}
	return nil, nil
}

func (m *model) fault(c codes.Code, msg string, now time.Time) (rejected bool) {
	// Every message ends with the code's runbook section.
	msg += " (see docs/runbook.md#" + strings.ToLower(string(c)) + ")"
	switch m.status {
	case Failed, Deleting:
		return true
	}
	r, ok := m.out[c]
	if !ok {
		r = Reason{Code: c, UpdatedAt: now}
	}
	r.Message = msg
	m.out[c] = r
	switch {
	case m.status == Creating && modelFailsCreating(c), modelFatal(c):
		m.status, m.failed = Failed, &r
	case m.status != Creating:
		// A CREATING stream holds the cause and stays CREATING.
		m.status = Impaired
	}
	return false
}

func (m *model) recover(o codes.Owner) (rejected bool) {
	switch m.status {
	case Failed, Deleting:
		return true
	}
	for c := range m.out {
		if modelOwner[c] == o {
			delete(m.out, c)
		}
	}
	switch {
	case m.status == Creating:
	case len(m.out) == 0:
		m.status = Active
	default:
		m.status = Impaired
	}
	return false
}

func (m *model) lagExceeded(now time.Time) {
	if m.status != Impaired {
		return
	}
	top := m.byRank("")[0]
	top.Message = "failure threshold; last error: " + top.Message
	top.UpdatedAt = now
	m.status, m.failed = Failed, &top
}

// TestStreamCausesProperty runs many random sequences of faults and
// recoveries from every owner, with lag, creation, deletion and restarts
// from the saved record, and checks after every event that the stream
// shows exactly what the model's outstanding causes imply, and that
// whatever changed the set of codes or the status was saved.
func TestStreamCausesProperty(t *testing.T) {
	all := slices.Collect(func(yield func(codes.Code) bool) {
		for c := range modelRank {
			if !yield(c) {
				return
			}
		}
	})
	slices.Sort(all)
	for seed := range uint64(300) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			runCausesSequence(t, rand.New(rand.NewPCG(seed, 0x0c0de5)), all)
		})
	}
}

func runCausesSequence(t *testing.T, rng *rand.Rand, all []codes.Code) {
	start := []Status{Creating, Active, Impaired}[rng.IntN(3)]
	h := newHarness(t, start, time.Hour)
	m := &model{status: start, out: map[codes.Code]Reason{}}
	if r := testRecord(start).StatusReason; r != nil {
		m.out[r.Code] = *r
	}
	for i := range 80 {
		*h.clock = h.clock.Add(time.Second)
		now := *h.clock
		before := *m
		before.out = maps(m.out)
		saves := h.store.count()
		what, err, rejected := randomEvent(t, h, m, rng, all, i, now)
		if rejected != errors.Is(err, ErrInvalidTransition) || !rejected && err != nil {
			t.Fatalf("event %d %s: err = %v, want rejected %v", i, what, err, rejected)
		}
		checkShows(t, fmt.Sprintf("event %d %s", i, what), h.s.View().File, m)
		// A CREATING stream's causes are held in memory only.
		changed := before.status != m.status || m.status != Creating && !slices.Equal(modelCodes(&before), modelCodes(m))
		if what == "restart" {
			continue
		}
		if n := h.store.count() - saves; changed != (n == 1) || n > 1 {
			t.Fatalf("event %d %s: %d saves, changed %v", i, what, n, changed)
		}
		if changed {
			h.store.mu.Lock()
			last := h.store.saves[len(h.store.saves)-1]
			h.store.mu.Unlock()
			checkShows(t, fmt.Sprintf("event %d %s saved", i, what), last, m)
		}
	}
}

func maps(m map[codes.Code]Reason) map[codes.Code]Reason {
	out := make(map[codes.Code]Reason, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// modelCodes lists the codes the model shows, statusReason first.
func modelCodes(m *model) []codes.Code {
	r, others := m.shows()
	var out []codes.Code
	if r != nil {
		out = append(out, r.Code)
	}
	for _, o := range others {
		out = append(out, o.Code)
	}
	return out
}

// randomEvent applies one random event to the stream and the model.
func randomEvent(t *testing.T, h *harness, m *model, rng *rand.Rand, all []codes.Code, i int, now time.Time) (string, error, bool) {
	switch n := rng.IntN(100); {
	case n < 50:
		c := all[rng.IntN(len(all))]
		if modelFatal(c) && rng.IntN(8) != 0 {
			c = codes.InternalError // fatal codes end a sequence: keep them rare
		}
		msg := fmt.Sprintf("%s #%d", c, i)
		return "Fault " + string(c), h.s.Fault(c, errors.New(msg)), m.fault(c, msg, now)
	case n < 85:
		o := codes.Owners()[rng.IntN(len(codes.Owners()))]
		return "Recover " + string(o), h.s.Recover(o), m.recover(o)
	case n < 89:
		rejected := m.status != Creating
		if !rejected {
			m.status, m.out = Active, map[codes.Code]Reason{}
		}
		return "Created", h.s.Created(), rejected
	case n < 92:
		m.lagExceeded(now)
		return "Lag over", h.s.Lag(2 * time.Hour), false
	case n < 93:
		if m.status == Deleting {
			return "Delete", h.s.Delete(), false
		}
		m.status, m.out, m.failed = Deleting, map[codes.Code]Reason{}, nil
		return "Delete", h.s.Delete(), false
	default:
		restart(t, h)
		if m.status == Creating {
			m.out = map[codes.Code]Reason{} // not saved: found again after the restart
		}
		return "restart", nil, false
	}
}

// restart replaces the harness's stream with one made from the last saved
// record (or the initial one), as the daemon does after a restart.
func restart(t *testing.T, h *harness) {
	t.Helper()
	rec := h.s.saved()
	h.store.mu.Lock()
	if n := len(h.store.saves); n > 0 {
		rec = h.store.saves[n-1].clone()
	}
	h.store.mu.Unlock()
	// Messages are saved with the changes of codes, not with every
	// repeat; the model keeps the latest, so carry them over by code.
	live := h.s.View().File
	if live.Status == Creating {
		live.StatusReason, live.OtherReasons = nil, nil
	}
	if rec.Status != live.Status || !slices.Equal(rec.Codes(), live.Codes()) {
		t.Fatalf("saved %s %v, live %s %v", rec.Status, rec.Codes(), live.Status, live.Codes())
	}
	if rec.StatusReason != nil {
		rec.StatusReason.Message = live.StatusReason.Message
	}
	for i := range rec.OtherReasons {
		rec.OtherReasons[i].Message = live.OtherReasons[i].Message
	}
	s, err := NewStream(rec, Options{Store: h.store, Now: func() time.Time { return *h.clock }, FailureThreshold: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h.s = s
}

// checkShows compares what a record shows with the model.
func checkShows(t *testing.T, what string, got File, m *model) {
	t.Helper()
	wantReason, wantOthers := m.shows()
	if got.Status != m.status {
		t.Fatalf("%s: status %s, want %s", what, got.Status, m.status)
	}
	if wantReason != nil && got.StatusReason != nil && m.status == Failed && strings.Contains(wantReason.Message, "failure threshold") {
		// The lag message's exact wording is the implementation's.
		if !strings.Contains(got.StatusReason.Message, "failure threshold") ||
			!strings.HasSuffix(got.StatusReason.Message, strings.TrimPrefix(wantReason.Message, "failure threshold")) {
			t.Fatalf("%s: lag reason %q, want one naming the threshold and %q", what, got.StatusReason.Message, wantReason.Message)
		}
		r := *wantReason
		r.Message = got.StatusReason.Message
		wantReason = &r
	}
	if !reflect.DeepEqual(got.StatusReason, wantReason) {
		t.Fatalf("%s: statusReason %+v, want %+v", what, got.StatusReason, wantReason)
	}
	if len(wantOthers) == 0 {
		wantOthers = nil
	}
	if !reflect.DeepEqual(got.OtherReasons, wantOthers) {
		t.Fatalf("%s: otherReasons %+v, want %+v", what, got.OtherReasons, wantOthers)
	}
}
