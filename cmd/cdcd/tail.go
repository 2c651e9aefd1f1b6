package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/record/pgapply"
)

// tailOptions select what cdcd tail reads and when it stops.
type tailOptions struct {
	stream    string
	fromStart bool
	idleExit  time.Duration
	max       int
	poll      time.Duration
	raw       bool
}

func cmdTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tail", stderr)
	path := fs.String("config", "", "configuration file to take the endpoint, region and Kinesis stream from")
	streamName := fs.String("stream", "", "cdcd stream name in the config whose Kinesis stream to read")
	kinStream := fs.String("kinesis-stream", "", "Kinesis stream name (instead of --config/--stream)")
	endpoint := fs.String("endpoint", "", "Kinesis endpoint URL (default: the config's aws.kinesis_endpoint, else AWS)")
	region := fs.String("region", "", "AWS region (default: the config's aws.region, else us-east-1)")
	var opt tailOptions
	fs.BoolVar(&opt.fromStart, "from-start", false, "read from the oldest record (TRIM_HORIZON) instead of from now")
	fs.DurationVar(&opt.idleExit, "idle-exit", 0, "exit when no record arrived for this long (0: run until interrupted)")
	fs.IntVar(&opt.max, "max", 0, "exit after printing this many records (0: no limit)")
	fs.DurationVar(&opt.poll, "poll", 200*time.Millisecond, "wait between GetRecords calls on an idle shard")
	fs.BoolVar(&opt.raw, "raw", false, "print every Kinesis record as it is, fragments included, without reassembly")
	applyDSN := fs.String("apply", "", "also apply each record to this PostgreSQL database (a replica with the same tables), last writer wins")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	opt.stream = *kinStream
	ep, reg := *endpoint, *region
	if *path != "" {
		cfg, err := config.Load(*path)
		if err != nil {
			return err
		}
		ep = cmpOr(ep, cfg.AWS.KinesisEndpoint)
		reg = cmpOr(reg, cfg.AWS.Region)
		if opt.stream == "" {
			for _, s := range cfg.Streams {
				if s.Name == *streamName || (*streamName == "" && len(cfg.Streams) == 1) {
					opt.stream = s.Target.KinesisStream
				}
			}
			if opt.stream == "" {
				return usageError{fmt.Sprintf("--stream %q names no stream in %s", *streamName, *path)}
			}
		}
	}
	if opt.stream == "" {
		return usageError{"tail needs --kinesis-stream NAME, or --config FILE [--stream NAME]"}
	}
	awsCfg, err := config.LoadAWS(ctx, cmpOr(reg, "us-east-1"))
	if err != nil {
		return err
	}
	client := kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) {
		if ep != "" {
			o.BaseEndpoint = aws.String(ep)
		}
	})
	var apply func(context.Context, *record.Message) error
	if *applyDSN != "" {
		conn, err := pgx.Connect(ctx, *applyDSN)
		if err != nil {
			return fmt.Errorf("connect to --apply database: %w", err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		ap, err := pgapply.New(ctx, conn, pgapply.Config{})
		if err != nil {
			return fmt.Errorf("prepare --apply database: %w", err)
		}
		apply = func(ctx context.Context, m *record.Message) error {
			_, err := ap.Apply(ctx, m)
			return err
		}
	}
	return tail(ctx, client, opt, newPrinter(stdout, opt.raw, apply))
}

// printer turns Kinesis records into output lines: raw, or decoded with
// chunked records reassembled from their fragments, and optionally applies
// each complete record to a replica.
type printer struct {
	out   *bufio.Writer
	raw   bool
	re    *record.Reassembler
	apply func(context.Context, *record.Message) error
}

func newPrinter(w io.Writer, raw bool, apply func(context.Context, *record.Message) error) *printer {
	return &printer{out: bufio.NewWriter(w), raw: raw, apply: apply,
		re: record.NewReassembler(record.ReassemblerConfig{})}
}

// handle processes one Kinesis record; it reports whether a line was
// printed. Callers serialise calls.
func (p *printer) handle(ctx context.Context, data []byte) (bool, error) {
	if p.raw {
		p.out.Write(data)
		p.out.WriteByte('\n')
		return true, p.out.Flush()
	}
	m, err := record.Decode(data)
	if err != nil {
		return false, fmt.Errorf("decode record: %w", err)
	}
	full, err := p.re.Add(m)
	if err != nil {
		return false, fmt.Errorf("reassemble: %w", err)
	}
	if full == nil {
		return false, nil // a fragment, or a chunked record still missing some
	}
	line := data
	if m.Type != record.MessageFull {
		if line, err = encodeMessage(full); err != nil {
			return false, err
		}
	}
	if p.apply != nil {
		if err := p.apply(ctx, full); err != nil {
			return false, fmt.Errorf("apply %s.%s at %s: %w", full.Source.Schema, full.Source.Table, full.Source.LSN, err)
		}
	}
	p.out.Write(line)
	p.out.WriteByte('\n')
	return true, p.out.Flush()
}

// encodeMessage writes a reassembled record in the DSQL envelope, as the
// record would have been had it fit in one Kinesis record.
func encodeMessage(m *record.Message) ([]byte, error) {
	type source struct {
		Version string `json:"version"`
		TsMs    int64  `json:"ts_ms"`
		TsNs    int64  `json:"ts_ns"`
		TxID    string `json:"txId"`
		Schema  string `json:"schema"`
		Table   string `json:"table"`
		DB      string `json:"db"`
		Cluster string `json:"cluster"`
		LSN     string `json:"lsn,omitempty"`
	}
	return json.Marshal(struct {
		Type   string          `json:"type"`
		Op     string          `json:"op"`
		Before record.RowImage `json:"before"`
		After  record.RowImage `json:"after"`
		Source source          `json:"source"`
		TsMs   int64           `json:"ts_ms"`
		TsNs   int64           `json:"ts_ns"`
	}{"full", m.Op, m.Before, m.After, source{m.Source.Version, m.Source.TsMs, m.Source.TsNs, m.Source.TxID,
		m.Source.Schema, m.Source.Table, m.Source.DB, m.Source.Cluster, m.Source.LSN}, m.TsMs, m.TsNs})
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// tailAPI is what tail calls on Kinesis.
type tailAPI interface {
	ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// tail reads every shard concurrently and writes each record's data as one
// line. Lines from different shards interleave in arrival order.
func tail(ctx context.Context, api tailAPI, opt tailOptions, p *printer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	shards, err := listShards(ctx, api, opt.stream)
	if err != nil {
		return err
	}
	var (
		mu      sync.Mutex
		printed int
		last    = time.Now()
		// behind holds the shards that have not yet read up to their tip:
		// a slow shard must not look idle.
		behind = map[string]bool{}
	)
	for _, id := range shards {
		behind[id] = true
	}
	atTip := func(shard string, tip bool) {
		mu.Lock()
		defer mu.Unlock()
		if tip {
			delete(behind, shard)
		} else {
			behind[shard] = true
		}
	}
	emit := func(data []byte) error {
		mu.Lock()
		defer mu.Unlock()
		last = time.Now()
		if opt.max > 0 && printed >= opt.max {
			return nil
		}
		// Once the tail is stopping, a record is left for the next run
		// rather than applied on a connection the cancellation may
		// already have closed.
		if ctx.Err() != nil {
			return ctx.Err()
		}
		ok, err := p.handle(ctx, data)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if ok {
			printed++
		}
		if opt.max > 0 && printed >= opt.max {
			cancel()
		}
		return nil
	}
	errs := make(chan error, len(shards))
	var wg sync.WaitGroup
	for _, id := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := readShard(ctx, api, opt, id, emit, atTip)
			if err != nil && !errors.Is(err, context.Canceled) {
				cancel() // one failing shard ends the tail with its error
			}
			errs <- err
		}()
	}
	if opt.idleExit > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(opt.idleExit / 10)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					mu.Lock()
					idle := len(behind) == 0 && time.Since(last) > opt.idleExit
					mu.Unlock()
					if idle {
						cancel()
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return nil
}

func listShards(ctx context.Context, api tailAPI, stream string) ([]string, error) {
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

func readShard(ctx context.Context, api tailAPI, opt tailOptions, shard string, emit func([]byte) error, atTip func(string, bool)) error {
	itType := types.ShardIteratorTypeLatest
	if opt.fromStart {
		itType = types.ShardIteratorTypeTrimHorizon
	}
	it, err := api.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(opt.stream), ShardId: aws.String(shard), ShardIteratorType: itType,
	})
	if err != nil {
		return fmt.Errorf("get iterator for shard %s: %w", shard, err)
	}
	iter := it.ShardIterator
	for iter != nil {
		out, err := api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(1000)})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var thr *types.ProvisionedThroughputExceededException
			if !errors.As(err, &thr) {
				return fmt.Errorf("get records from shard %s: %w", shard, err)
			}
		} else {
			for _, r := range out.Records {
				if err := emit(r.Data); err != nil {
					return err
				}
			}
			iter = out.NextShardIterator
			atTip(shard, len(out.Records) == 0 || aws.ToInt64(out.MillisBehindLatest) == 0 && len(out.Records) < 1000)
			if len(out.Records) > 0 {
				continue
			}
		}
		t := time.NewTimer(opt.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	atTip(shard, true) // a closed shard has nothing more to give
	return nil
}
