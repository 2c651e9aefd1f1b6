package main

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/consumer"
	"github.com/cdcd-dev/cdcd/record/pgapply"
)

func cmdTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tail", stderr)
	path := fs.String("config", "", "configuration file to take the endpoint, region and Kinesis stream from")
	streamName := fs.String("stream", "", "cdcd stream name in the config whose Kinesis stream to read")
	endpoint := fs.String("endpoint", "", "Kinesis endpoint URL (default: the config's aws.kinesis_endpoint, else AWS)")
	region := fs.String("region", "", "AWS region (default: the config's aws.region, else us-east-1)")
	var opt consumer.Config
	fs.StringVar(&opt.Stream, "kinesis-stream", "", "Kinesis stream name (instead of --config/--stream)")
	fs.BoolVar(&opt.FromStart, "from-start", false, "read from the oldest record (TRIM_HORIZON) instead of from now")
	fs.DurationVar(&opt.IdleExit, "idle-exit", 0, "exit when no record arrived for this long (0: run until interrupted)")
	limit := fs.Int("max", 0, "exit after printing this many records (0: no limit)")
	fs.DurationVar(&opt.Poll, "poll", consumer.DefaultPoll, "wait between GetRecords calls on an idle shard")
	fs.BoolVar(&opt.Raw, "raw", false, "print every Kinesis record as it is, fragments included, without reassembly")
	fs.BoolVar(&opt.Dedupe, "dedupe", false, "skip records already printed (a redelivery repeats a record)")
	applyDSN := fs.String("apply", "", "also apply each record to this PostgreSQL database (a replica with the same tables), last writer wins")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path != "" {
		cfg, err := config.Load(*path)
		if err != nil {
			return err
		}
		*endpoint, *region = cmp.Or(*endpoint, cfg.AWS.KinesisEndpoint), cmp.Or(*region, cfg.AWS.Region)
		if sc := cfg.StreamNamed(*streamName); opt.Stream == "" {
			if sc == nil {
				return usageError{fmt.Sprintf("--stream %q names no stream in %s", *streamName, *path)}
			}
			opt.Stream = sc.Target.KinesisStream
		}
	}
	if opt.Stream == "" {
		return usageError{"tail needs --kinesis-stream NAME, or --config FILE [--stream NAME]"}
	}
	awsCfg, err := config.LoadAWS(ctx, cmp.Or(*region, "us-east-1"))
	if err != nil {
		return err
	}
	client := kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) {
		if *endpoint != "" {
			o.BaseEndpoint = endpoint
		}
	})
	var apply *pgapply.Applier
	if *applyDSN != "" {
		conn, err := pgx.Connect(ctx, *applyDSN)
		if err != nil {
			return fmt.Errorf("connect to --apply database: %w", err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		if apply, err = pgapply.New(ctx, conn, pgapply.Config{}); err != nil {
			return fmt.Errorf("prepare --apply database: %w", err)
		}
	}
	return consumer.Run(ctx, client, opt, printer(stdout, *limit, apply))
}

// printer prints each record as one line, after applying it to the replica
// if there is one, and stops after limit lines (0: no limit).
func printer(w io.Writer, limit int, apply *pgapply.Applier) consumer.Handler {
	out, printed := bufio.NewWriter(w), 0
	return func(ctx context.Context, r consumer.Record) error {
		if m := r.Message; apply != nil && m != nil {
			if _, err := apply.Apply(ctx, m); err != nil {
				return fmt.Errorf("apply %s.%s at %s: %w", m.Source.Schema, m.Source.Table, m.Source.LSN, err)
			}
		}
		fmt.Fprintf(out, "%s\n", r.Data)
		if err := out.Flush(); err != nil {
			return err
		}
		if printed++; limit > 0 && printed >= limit {
			return consumer.ErrStop
		}
		return nil
	}
}
