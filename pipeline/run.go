package pipeline

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/cdcd-dev/cdcd/atrest"
	"github.com/cdcd-dev/cdcd/capture"
	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/retry"
	"github.com/cdcd-dev/cdcd/rolecreds"
	"github.com/cdcd-dev/cdcd/sink"
	"github.com/cdcd-dev/cdcd/state"
)

// drainTimeout bounds how long shutdown waits for queued records to reach
// Kinesis; whatever is left is redelivered from the slot on the next start.
const drainTimeout = 10 * time.Second

// errFailed ends a run whose stream FAILED; the supervisor stops such a
// run anyway, so it is not an error of the run itself.
var errFailed = errors.New("stream failed")

// streamRun is one run of one stream, from preparing its source and target
// to the drained shutdown. It owns what each step needs, so the steps take
// no parameter bundles.
type streamRun struct {
	d   *Daemon
	st  *state.Stream
	def state.Definition
	log *slog.Logger

	sc     *config.Stream
	cl     *config.Cluster
	met    *streamMetrics
	spill  *spillConfig
	src    *capture.Source
	kin    *kinesis.Client
	closer io.Closer // stops the role's credential refreshes

	// Set by prepare.
	info   capture.Info
	target sink.Target
	gate   *keyGate

	// sinkInternal is set while an INTERNAL_ERROR that the sink reported
	// is outstanding, so that the sink's success clears it and not one the
	// handler reported. Only the sink's Report, whose calls are
	// serialised, touches it.
	sinkInternal bool
	// targetFailing is when DescribeStreamSummary started failing at
	// prepare, so that a failure a retry could clear is reported once it
	// has lasted capture.DefaultImpairAfter; zero while it succeeds.
	targetFailing time.Time
}

// RunStream implements Runner: it prepares the source and the target, then
// delivers until ctx ends. A source that is down or misconfigured keeps the
// stream CREATING (the error is logged and retried, so fixing it needs no
// restart); AWS permission and key errors fail a CREATING stream and impair
// a running one (docs/lifecycle.md#codes). It does not return while ctx is
// live after reporting a fault: a run held by its role or its cluster key
// retries until the condition is fixed.
func (d *Daemon) RunStream(ctx context.Context, st *state.Stream) error {
	r, err := d.newRun(ctx, st)
	if err != nil {
		return quiet(err)
	}
	defer r.closer.Close()
	if err := r.prepare(ctx); err != nil {
		return quiet(err)
	}
	return r.deliver(ctx)
}

// quiet turns the end of a FAILED stream's run, or of a cancelled one,
// into nil.
func quiet(err error) error {
	if errors.Is(err, errFailed) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// hold runs step until it succeeds, retrying on the reconnect schedule
// and reporting each failure as code, so that the stream shows why it
// waits and resumes without a restart once the condition is fixed. When
// step succeeds after failing, the condition it reported is gone, and
// code's owner is recovered; whatever comes next reports anew if another
// condition remains. A stream that fails meanwhile (a denial while
// CREATING) ends the run with errFailed.
func (r *streamRun) hold(ctx context.Context, code codes.Code, step func() error) error {
	failed := false
	err := retry.Do(ctx, retry.Reconnect(), func() error {
		err := step()
		if err == nil {
			return nil
		}
		failed = true
		_ = r.st.Fault(code, err)
		if r.st.View().Status == state.Failed {
			return retry.Permanent(errFailed)
		}
		return err
	}, func(err error, wait time.Duration) {
		r.log.Error("stream held; retrying", "code", string(code), "err", err, "retry_in", wait)
	})
	if err == nil && failed {
		_ = r.st.Recover(code.Owner())
	}
	return err
}

// newRun resolves the stream's configuration (waiting for its cluster while
// it cannot be reached) and builds its source and Kinesis client.
func (d *Daemon) newRun(ctx context.Context, st *state.Stream) (*streamRun, error) {
	r := &streamRun{d: d, st: st, def: st.Definition(), log: d.log.With("stream", st.ID())}
	failed := false
	err := retry.Do(ctx, retry.Schedule{Initial: 5 * time.Second, Max: 5 * time.Second}, func() (err error) {
		r.sc, r.cl, err = d.streamConfig(ctx, r.def)
		if err != nil {
			// The source of a stream created through the API is read to
			// find its tables: the stream shows why it waits.
			failed = true
			_ = st.Fault(capture.Classify(err), capture.Describe(err))
		}
		return err
	}, func(err error, _ time.Duration) {
		r.log.Error("stream cannot start yet; retrying", "err", err)
	})
	if err != nil {
		return nil, err
	}
	if failed {
		_ = st.Recover(codes.OwnerCapture)
	}
	r.log = r.log.With("name", r.sc.Name)
	r.met = d.metrics.stream(r.sc.Name)
	if err := r.openSource(ctx); err != nil {
		return nil, err
	}
	d.setLive(r.def.StreamID, func(l *liveStream) { l.sc = r.sc })
	if err := r.hold(ctx, codes.RoleAccessDenied, func() error { return r.openTarget(ctx) }); err != nil {
		return nil, err
	}
	return r, nil
}

// openTarget builds the Kinesis client with the stream's credentials. A
// role the configuration does not allow, or whose provider cannot be set
// up, is ROLE_ACCESS_DENIED.
func (r *streamRun) openTarget(ctx context.Context) error {
	d := r.d
	creds, closer, err := d.streamCredentials(ctx, r.sc, r.def.ARN, r.def.ClusterID, r.log)
	if err != nil {
		return err
	}
	r.closer = closer
	r.kin = d.kinesisClient(creds)
	return nil
}

// openSource builds the stream's keyring, spill store and capture source.
func (r *streamRun) openSource(ctx context.Context) error {
	var ring *atrest.Keyring
	err := r.hold(ctx, codes.ClusterCMKInaccessible, func() (err error) {
		ring, err = r.d.keyring(r.cl, r.def)
		return err
	})
	if err != nil {
		return err
	}
	if r.spill, err = r.d.spill(ring, r.st, r.sc.Delivery.SpillMaxBytes, r.log); err != nil {
		return err
	}
	r.src, err = r.d.source(r.sc, r.cl, r.st, r.met, r.spill, r.log)
	return err
}

// prepare readies the slot and reads the target's limits, retrying while
// either is unavailable, then sets up the cluster key check.
func (r *streamRun) prepare(ctx context.Context) error {
	err := retry.Do(ctx, retry.Reconnect(), func() error { return r.prepareOnce(ctx) },
		func(err error, wait time.Duration) {
			r.log.Error("stream cannot start yet; retrying", "err", err, "retry_in", wait)
		})
	if err != nil {
		return err
	}
	r.prepared()
	r.d.setLive(r.def.StreamID, func(l *liveStream) { l.target = &r.target })
	var checker *atrest.Checker
	err = r.hold(ctx, codes.ClusterCMKInaccessible, func() (err error) {
		checker, r.gate, err = r.d.clusterKey(ctx, r.cl, r.st, r.spill.ring, r.log)
		return err
	})
	if err != nil {
		return err
	}
	if r.st.View().Status == state.Failed {
		return errFailed
	}
	if checker != nil {
		go checker.Run(ctx)
	}
	return nil
}

// prepareOnce is one attempt of prepare. A lost slot and a failing stream
// are permanent; anything else is tried again. The source reports its own
// failures (capture.Source.Prepare); the target's are reported by
// targetFailed. Throttling and internal errors never fail a CREATING
// stream.
func (r *streamRun) prepareOnce(ctx context.Context) error {
	info, err := r.src.Prepare(ctx, r.st.View().Checkpoint.LSN)
	if errors.Is(err, capture.ErrSlotLost) {
		_ = r.st.Fault(codes.SourceSlotLost, err)
		return retry.Permanent(errFailed)
	}
	if err != nil {
		return err
	}
	target, err := sink.DescribeTarget(ctx, r.kin, r.sc.Target.KinesisStream, "")
	if err != nil {
		return r.targetFailed(err)
	}
	r.info, r.target, r.targetFailing = info, target, time.Time{}
	return nil
}

// targetFailed reports a failed DescribeStreamSummary: a denial or a
// missing target at once, with its fix, anything else once it has failed
// for capture.DefaultImpairAfter, the sink's delay for its transient codes.
func (r *streamRun) targetFailed(err error) error {
	if r.targetFailing.IsZero() {
		r.targetFailing = time.Now()
	}
	code := classify(err)
	if code.Denial() || code.Fatal() {
		err = withFix(err, targetFix(code, r.sc, r.d.cfg.AWS.Region))
	} else if time.Since(r.targetFailing) < capture.DefaultImpairAfter {
		return err
	}
	_ = r.st.Fault(code, err)
	if r.st.View().Status == state.Failed {
		return retry.Permanent(errFailed)
	}
	return err
}

// prepared clears the codes that a prepared run disproves
// (docs/lifecycle.md#re-evaluation-after-a-restart). No sink exists yet,
// so nothing is submitted and no delivery is failing.
// DescribeStreamSummary just succeeded with the stream's credentials: the
// role was assumed and the target answered, so the sink's codes and
// ROLE_ACCESS_DENIED (whose failures reach the stream only through the
// calls made with the role's credentials) are cleared; and this run is
// working, which clears the pipeline's INTERNAL_ERROR. A condition that
// persists is reported again by the first call that meets it.
func (r *streamRun) prepared() {
	for _, o := range []codes.Owner{codes.OwnerSink, codes.OwnerRole, codes.OwnerPipeline} {
		_ = r.st.Recover(o)
	}
}

// deliver runs capture and sink for the prepared stream and shuts them down
// in order: stop capture, drain the sink under a deadline, persist the final
// checkpoint.
func (r *streamRun) deliver(ctx context.Context) error {
	snk, h, err := r.newHandler()
	if err != nil {
		return err
	}
	r.d.setLive(r.def.StreamID, func(l *liveStream) { l.src = r.src })
	r.logReady(h.cp)
	if r.st.View().Status == state.Creating {
		_ = r.st.Created()
	}

	// Capture stops first (ctx, or the supervisor cancelling a FAILED
	// stream); the sink outlives it to drain.
	sinkCtx, stopSink := context.WithCancel(context.WithoutCancel(ctx))
	sinkDone := make(chan error, 1)
	go func() { sinkDone <- snk.Run(sinkCtx) }()
	var wg sync.WaitGroup
	wg.Go(func() { watchLag(ctx, r.st, h) })

	capErr := r.src.Run(ctx, h)
	if errors.Is(capErr, capture.ErrSlotLost) {
		_ = r.st.Fault(codes.SourceSlotLost, capErr)
	}
	wg.Wait()
	r.stop(ctx, snk, h, stopSink, sinkDone)
	if capErr != nil && !errors.Is(capErr, context.Canceled) && !errors.Is(capErr, capture.ErrSlotLost) {
		return capErr
	}
	return nil
}

// stop drains the sink under drainTimeout, stops it and persists the final
// checkpoint.
func (r *streamRun) stop(ctx context.Context, snk *sink.Sink, h *handler, stopSink context.CancelFunc, sinkDone <-chan error) {
	drainCtx, cancelDrain := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	if err := snk.Drain(drainCtx); err != nil {
		r.log.Warn("stopped before every queued record reached Kinesis; they are sent again from the slot on the next start", "err", err)
	}
	cancelDrain()
	stopSink()
	<-sinkDone
	if err := h.Persist(context.WithoutCancel(ctx), snk.Delivered()); err != nil {
		r.log.Error("persist final checkpoint", "err", err)
	}
	r.log.Info("stream stopped", "checkpoint", state.FormatLSN(h.Persisted()))
}

// newHandler builds the encoder, the sink and the handler that joins them.
func (r *streamRun) newHandler() (*sink.Sink, *handler, error) {
	rec := r.st.View().File
	enc, err := record.NewEncoder(record.Config{
		SystemID: r.info.SystemID, Cluster: rec.Definition.ClusterID, Database: r.info.Database,
		Ordering: record.Ordering(r.sc.Ordering), MaxRecordBytes: r.target.MaxRecordBytes, EmitTruncate: r.sc.EmitTruncate,
		Types: r.src.Types(),
	})
	if err != nil {
		return nil, nil, err
	}
	d := r.sc.Delivery
	snk, err := sink.New(sink.Config{
		StreamName: r.sc.Target.KinesisStream, Ordering: record.Ordering(r.sc.Ordering), Aggregate: r.sc.Aggregation == config.AggregationKPL,
		MaxRecordBytes: r.target.MaxRecordBytes, MaxRequestBytes: r.target.MaxRequestBytes(), MaxInFlight: d.MaxInFlight,
		Linger: d.Linger.Duration, QueueBytes: d.QueueBytes, Report: r.reportSink,
		Logger: r.log.With("component", "sink"), Metrics: r.met.sink,
	}, r.kin)
	if err != nil {
		return nil, nil, err
	}
	h := newHandler(r.st.ID(), rec.Checkpoint, enc, sinkSubmitter{snk}, r.st, r.met.pipe, r.log)
	h.spill = record.SpillOptions{Store: r.spill.store, Budget: d.MemoryBudget}
	h.hold = r.gate.Wait
	return snk, h, nil
}

// reportSink is the sink's Report. An STS error inside a Kinesis call is
// the role's. A success is evidence for every code the sink's calls
// report: the sink's own, the role's (the call was signed with the role's
// credentials), and an INTERNAL_ERROR the sink reported. It never clears
// the cluster key's code, which only the key checker can.
func (r *streamRun) reportSink(code codes.Code, err error) {
	if code == "" {
		_ = r.st.Recover(codes.OwnerSink)
		_ = r.st.Recover(codes.OwnerRole)
		if r.sinkInternal {
			r.sinkInternal = false
			_ = r.st.Recover(codes.OwnerPipeline)
		}
		return
	}
	if c := classify(err); c != codes.InternalError {
		code = c
	}
	r.sinkInternal = r.sinkInternal || code == codes.InternalError
	_ = r.st.Fault(code, err)
}

func (r *streamRun) logReady(cp state.Checkpoint) {
	t := r.target
	r.log.Info("stream ready", "slot", r.sc.Slot, "publication", r.sc.Publication, "kinesis_stream", r.sc.Target.KinesisStream,
		"shards", t.Shards, "max_record_bytes", t.MaxRecordBytes, "encryption", t.EncryptionType, "key_id", t.KeyID,
		"resume_lsn", state.FormatLSN(cp.LSN))
}

// watchLag reports the handler's lag every second until ctx ends: that is
// what turns a long IMPAIRED stream FAILED, after which the supervisor
// cancels ctx.
func watchLag(ctx context.Context, st *state.Stream, h *handler) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			lag := h.Lag(now)
			h.met.lag.Set(lag.Seconds())
			_ = st.Lag(lag)
		}
	}
}

// classify maps a delivery error to its status-reason code: an error from
// assuming the stream's role first, then Kinesis and KMS errors.
func classify(err error) codes.Code {
	if code, ok := rolecreds.Classify(err); ok {
		return code
	}
	return sink.Classify(err)
}
