package main

import (
	"cmp"
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/capture/pgauth"
	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/consumer"
	"github.com/cdcd-dev/cdcd/record/pgapply"
)

func cmdTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tail", stderr)
	path := fs.String("config", "", "configuration file to take the endpoint, region and Kinesis stream from")
	streamName := fs.String("stream", "", "cdcd stream name in the config whose Kinesis stream to read")
	endpoint := fs.String("endpoint", "", "Kinesis endpoint URL (default: the config's aws.kinesis_endpoint, else AWS)")
	region := fs.String("region", "", "AWS region (default: the config's aws.region, else AWS_REGION or the AWS profile's)")
	opt, format := consumer.Config{Status: stderr}, consumer.FormatJSON
	fs.Var(&format, "format", "`json|text`: json prints each record as written, text one line a record for people")
	fs.StringVar(&opt.Stream, "kinesis-stream", "", "Kinesis stream name (instead of --config/--stream)")
	fs.BoolVar(&opt.FromStart, "from-start", false, "read from the oldest record (TRIM_HORIZON) instead of from now")
	fs.Var(consumer.SinceFlag(&opt.Since), "since", "read from the records that arrived at or after `T`: an RFC 3339 time, or a duration back from now (15m)")
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
	awsCfg, err := config.LoadAWS(ctx, *region)
	if err != nil {
		return err
	}
	client, err := consumer.NewClient(awsCfg, *endpoint)
	if err != nil {
		return err
	}
	var apply *pgapply.Applier
	if *applyDSN != "" {
		conn, err := pgx.Connect(ctx, *applyDSN)
		if err != nil {
			return fmt.Errorf("connect to --apply database: %w", pgauth.DSNError(err))
		}
		defer conn.Close(context.WithoutCancel(ctx))
		if apply, err = pgapply.New(ctx, conn, pgapply.Config{}); err != nil {
			return fmt.Errorf("prepare --apply database: %w", err)
		}
	}
	return consumer.Run(ctx, client, opt, applier(apply, consumer.Printer(stdout, format, *limit)))
}

// applier applies each record to the replica, if there is one, before
// next prints it: a record is printed only once the replica has it.
func applier(apply *pgapply.Applier, next consumer.Handler) consumer.Handler {
	return func(ctx context.Context, r consumer.Record) error {
		if m := r.Message; apply != nil && m != nil {
			if _, err := apply.Apply(ctx, m); err != nil {
				return fmt.Errorf("apply %s.%s at %s: %w", m.Source.Schema, m.Source.Table, m.Source.LSN, err)
			}
		}
		return next(ctx, r)
	}
}
