package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/retry"
)

// getRecordsLimit is the most records one GetRecords call asks for; a
// shorter answer with no lag means the shard is read to its tip.
const getRecordsLimit = 1000

// run is the state one Run's shard readers share.
type run struct {
	api    API
	cfg    Config
	handle Handler
	cancel context.CancelFunc

	mu   sync.Mutex
	last time.Time // when the last Kinesis record arrived
	// behind holds the shards not yet read up to their tip: a slow shard
	// must not look idle.
	behind map[string]bool
	re     *record.Reassembler
	dedupe *record.Deduper
}

func newRun(api API, cfg Config, handle Handler, shards []string, cancel context.CancelFunc) *run {
	r := &run{api: api, cfg: cfg, handle: handle, cancel: cancel, last: time.Now(), behind: map[string]bool{},
		re: record.NewReassembler(record.ReassemblerConfig{})}
	if cfg.Dedupe {
		r.dedupe = record.NewDeduper(record.DeduperConfig{})
	}
	for _, id := range shards {
		r.behind[id] = true
	}
	return r
}

func (r *run) readShard(ctx context.Context, shard string) error {
	itType, at := r.cfg.start()
	it, err := r.api.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(r.cfg.Stream), ShardId: aws.String(shard), ShardIteratorType: itType, Timestamp: at,
	})
	if err != nil {
		return fmt.Errorf("get iterator for shard %s: %w", shard, err)
	}
	for iter := it.ShardIterator; iter != nil; {
		out, err := r.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(getRecordsLimit)})
		var thr *types.ProvisionedThroughputExceededException
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &thr):
			// Throttled: wait a poll and try the same iterator again.
		case err != nil:
			return fmt.Errorf("get records from shard %s: %w", shard, err)
		default:
			for _, rec := range out.Records {
				if err := r.emit(ctx, rec.Data); err != nil {
					return err
				}
			}
			iter = out.NextShardIterator
			r.atTip(shard, len(out.Records) == 0 || aws.ToInt64(out.MillisBehindLatest) == 0 && len(out.Records) < getRecordsLimit)
			if len(out.Records) > 0 {
				continue
			}
		}
		if err := retry.Sleep(ctx, r.cfg.Poll); err != nil {
			return err
		}
	}
	r.atTip(shard, true) // a closed shard has nothing more to give
	return nil
}

func (r *run) atTip(shard string, tip bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if tip {
		delete(r.behind, shard)
	} else {
		r.behind[shard] = true
	}
}

// emit hands the records one Kinesis record carries to the handler: the
// record itself, or each record of a KPL aggregate (docs/records.md#aggregation)
// in order. Raw hands over the Kinesis record as it is.
func (r *run) emit(ctx context.Context, data []byte) error {
	if r.cfg.Raw || !record.IsKPLAggregate(data) {
		return r.emitOne(ctx, data)
	}
	inner, err := record.Deaggregate(data)
	if err != nil {
		return fmt.Errorf("deaggregate record: %w", err)
	}
	for _, d := range inner {
		if err := r.emitOne(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// emitOne turns one record into at most one Record for the handler.
func (r *run) emitOne(ctx context.Context, data []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = time.Now()
	// Once the run is stopping, a record is left for the next one rather
	// than handled with resources the cancellation may already have
	// released.
	if ctx.Err() != nil {
		return ctx.Err()
	}
	rec, ok, err := r.decode(data)
	if err != nil || !ok {
		return err
	}
	err = r.handle(ctx, rec)
	switch {
	case errors.Is(err, ErrStop):
		r.cancel()
		return context.Canceled
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	}
	return err
}

// decode reports ok when data completes a record to hand over: not a
// fragment, a chunked record still missing some, or a duplicate.
func (r *run) decode(data []byte) (rec Record, ok bool, err error) {
	if r.cfg.Raw {
		return Record{Data: data}, true, nil
	}
	m, err := record.Decode(data)
	if err != nil {
		return rec, false, fmt.Errorf("decode record: %w", err)
	}
	full, err := r.re.Add(m)
	if err != nil || full == nil {
		if err != nil {
			err = fmt.Errorf("reassemble: %w", err)
		}
		return rec, false, err
	}
	if r.dedupe != nil {
		if seen, err := r.dedupe.Seen(full); err != nil || seen {
			return rec, false, err
		}
	}
	rec.Message, rec.Data = full, data
	if m.Type != record.MessageFull {
		if rec.Data, err = encodeFull(full); err != nil {
			return rec, false, err
		}
	}
	return rec, true, nil
}

// watchIdle ends the run once every shard is at its tip and nothing
// arrived for cfg.IdleExit.
func (r *run) watchIdle(ctx context.Context) {
	t := time.NewTicker(r.cfg.IdleExit / 10)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.mu.Lock()
			idle := len(r.behind) == 0 && time.Since(r.last) > r.cfg.IdleExit
			r.mu.Unlock()
			if idle {
				r.cancel()
				return
			}
		}
	}
}
