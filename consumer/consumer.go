// Package consumer reads a Kinesis data stream of cdcd records the way an
// application consuming it would: every shard at once, from the oldest
// record, from a time or from now, each record decoded, chunked records reassembled from
// their fragments (docs/records.md#chunking) and, if asked, redelivered
// records dropped (docs/records.md#identity).
package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdcd-dev/cdcd/record"
)

// API is what a consumer calls on Kinesis.
type API interface {
	ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

var _ API = (*kinesis.Client)(nil)

// DefaultPoll is Config.Poll when it is zero.
const DefaultPoll = 200 * time.Millisecond

// Config selects what Run reads and when it stops.
type Config struct {
	// Stream is the Kinesis data stream's name.
	Stream string
	// FromStart reads from the oldest record (TRIM_HORIZON) instead of
	// from now (LATEST).
	FromStart bool
	// IdleExit, if positive, ends Run once every shard has been read to
	// its tip and no record arrived for this long.
	IdleExit time.Duration
	// Poll is the wait between GetRecords calls on a shard that had
	// nothing new.
	Poll time.Duration
	// Raw hands over every Kinesis record as it is, fragments included:
	// nothing is decoded, reassembled or dropped.
	Raw bool
	// Dedupe drops records already handed over (delivery is at least
	// once), remembering a bounded window of them.
	Dedupe bool
	// Since, if not zero, reads from the first record Kinesis received at
	// or after it (AT_TIMESTAMP, by arrival time, not commit time)
	// instead of from now. It excludes FromStart.
	Since time.Time
	// Status, if not nil, gets one line once the shards are listed:
	// which stream, its shards and where reading starts.
	Status io.Writer
}

// Record is what Run hands over: one cdcd record.
type Record struct {
	// Data is the record as cdcd wrote it, or, reassembled from several
	// Kinesis records, as it would have been had it fit in one.
	Data []byte
	// Message is the record decoded, always a MessageFull; nil with
	// Config.Raw.
	Message *record.Message
}

// ErrStop, returned by a Handler, ends Run without an error.
var ErrStop = errors.New("consumer: stop")

// Handler is given each record. Run calls it from one goroutine at a time,
// and no more once its context is done. Records of one shard arrive in
// order; records of different shards interleave in arrival order.
type Handler func(context.Context, Record) error

// Run reads every shard of cfg.Stream and hands each record to handle,
// until handle returns ErrStop or an error, a shard fails, cfg.IdleExit
// passes, or ctx is done. It returns nil when stopped by handle or
// IdleExit, and ctx's error when ctx ends it.
func Run(ctx context.Context, api API, cfg Config, handle Handler) error {
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.FromStart && !cfg.Since.IsZero() {
		return errors.New("read either from the start or since a time, not both")
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	shards, err := listShards(runCtx, api, cfg.Stream)
	if err != nil {
		return err
	}
	if cfg.Status != nil {
		fmt.Fprintln(cfg.Status, status(cfg, shards))
	}
	r := newRun(api, cfg, handle, shards, cancel)
	errs := make(chan error, len(shards))
	var wg sync.WaitGroup
	for _, id := range shards {
		wg.Go(func() {
			err := r.readShard(runCtx, id)
			if err != nil && !errors.Is(err, context.Canceled) {
				cancel() // one failing shard ends the run with its error
			}
			errs <- err
		})
	}
	if cfg.IdleExit > 0 {
		wg.Go(func() { r.watchIdle(runCtx) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return ctx.Err()
}

func listShards(ctx context.Context, api API, stream string) ([]string, error) {
	var ids []string
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := api.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", stream, err)
		}
		for _, s := range out.Shards {
			ids = append(ids, aws.ToString(s.ShardId))
		}
		if out.NextToken == nil {
			return ids, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// NewClient returns a Kinesis client for awsCfg, sending to endpoint
// instead of AWS's when it is not empty. awsCfg must name a region: the
// standard AWS chain (AWS_REGION, the profile's region) may find none, and
// an SDK left without one fails later with a message about endpoints.
func NewClient(awsCfg aws.Config, endpoint string) (*kinesis.Client, error) {
	if awsCfg.Region == "" {
		return nil, errors.New("no AWS region: pass --region, set aws.region in the config, set AWS_REGION, or give the AWS profile a region")
	}
	return kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}

// start is where reading each shard begins.
func (c Config) start() (types.ShardIteratorType, *time.Time) {
	switch {
	case !c.Since.IsZero():
		return types.ShardIteratorTypeAtTimestamp, aws.Time(c.Since)
	case c.FromStart:
		return types.ShardIteratorTypeTrimHorizon, nil
	}
	return types.ShardIteratorTypeLatest, nil
}

// statusShards is how many shard ids the status line names.
const statusShards = 3

// status is the line Config.Status gets: the stream, how many shards it
// has and the first few of them, and where reading starts.
func status(cfg Config, shards []string) string {
	ids := strings.Join(shards[:min(len(shards), statusShards)], ", ")
	if len(shards) > statusShards {
		ids += ", …"
	}
	plural := "s"
	if len(shards) == 1 {
		plural = ""
	}
	from, at := cfg.start()
	line := fmt.Sprintf("reading Kinesis stream %s: %d shard%s (%s) from %s", cfg.Stream, len(shards), plural, ids, from)
	if at != nil {
		line += " " + at.UTC().Format(time.RFC3339)
	}
	return line
}
