package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dsql"
	"github.com/aws/aws-sdk-go-v2/service/dsql/types"

	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/state/api"
)

const streamsUsage = `usage:
  cdcd streams list   --cluster ID                       list a cluster's streams
  cdcd streams get    --cluster ID --stream ID           show one stream, with its source and target
  cdcd streams create --cluster ID --kinesis-stream-arn ARN --role-arn ARN [--ordering UNORDERED|ROW] [--client-token T] [--tag k=v ...]
  cdcd streams delete --cluster ID --stream ID
Each takes --config FILE (to find the daemon's listen address) or --endpoint URL, and --json.
`

// cmdStreams drives the daemon's control plane (docs/api.md) with the AWS
// SDK's dsql client.
func cmdStreams(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"streams needs a subcommand: list, get, create or delete\n\n" + streamsUsage}
	}
	sub, args := args[0], args[1:]
	fs := newFlags("streams "+sub, stderr)
	path := fs.String("config", "", "configuration file whose listen address to use")
	endpoint := fs.String("endpoint", "", "control plane URL (default: http:// + the config's listen, else http://"+config.DefaultListen+")")
	cluster := fs.String("cluster", "", "cluster identifier (26 characters); default: the config's only cluster identifier")
	stream := fs.String("stream", "", "stream identifier")
	in := dsql.CreateStreamInput{Format: types.StreamFormatJson, TargetDefinition: &types.TargetDefinitionMemberKinesis{}, Tags: map[string]string{}}
	target := &in.TargetDefinition.(*types.TargetDefinitionMemberKinesis).Value
	fs.Func("kinesis-stream-arn", "target Kinesis data stream ARN", func(v string) error { target.StreamArn = &v; return nil })
	fs.Func("role-arn", "role cdcd assumes to write the target", func(v string) error { target.RoleArn = &v; return nil })
	ordering := fs.String("ordering", "UNORDERED", "UNORDERED or ROW")
	fs.Func("client-token", "idempotency token; a retried create with the same token returns the same stream", func(v string) error { in.ClientToken = &v; return nil })
	fs.Func("tag", "tag as key=value; repeatable", func(v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return fmt.Errorf("%q is not key=value", v)
		}
		in.Tags[k] = val
		return nil
	})
	asJSON := fs.Bool("json", false, "print one JSON document (for list, an array) instead of text")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	base, region := *endpoint, "us-east-1"
	if *path != "" {
		cfg, err := config.Load(*path)
		if err != nil {
			return err
		}
		base, region = cmp.Or(base, "http://"+cfg.Listen), cfg.AWS.Region
		if *cluster == "" && len(cfg.Clusters) == 1 {
			*cluster = cfg.Clusters[0].Identifier
		}
	}
	if *cluster == "" {
		return usageError{"streams needs --cluster ID (the identifier GetStream and the stream ARN show)"}
	}
	if (sub == "get" || sub == "delete") && *stream == "" {
		return usageError{"streams " + sub + " needs --stream ID"}
	}
	c, err := api.NewClient(ctx, cmp.Or(base, "http://"+config.DefaultListen), region, config.LoadAWS)
	if err != nil {
		return err
	}
	var out any
	switch sub {
	case "list":
		out, err = api.ListStreams(ctx, c, *cluster)
	case "get":
		out, err = api.GetStream(ctx, c, *cluster, *stream)
	case "create":
		if target.StreamArn == nil || target.RoleArn == nil {
			return usageError{"streams create needs --kinesis-stream-arn and --role-arn"}
		}
		in.ClusterIdentifier, in.Ordering = cluster, types.StreamOrdering(*ordering)
		out, err = api.CreateStream(ctx, c, &in)
	case "delete":
		out, err = api.DeleteStream(ctx, c, *cluster, *stream)
	default:
		return usageError{fmt.Sprintf("unknown streams subcommand %q\n\n%s", sub, streamsUsage)}
	}
	if err != nil {
		return err
	}
	return printStreams(stdout, out, *asJSON)
}

// printStreams prints a stream as "key: value" lines, or streams as a
// table, or either as JSON.
func printStreams(w io.Writer, v any, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	switch v := v.(type) {
	case []api.Stream:
		fmt.Fprintln(tw, "STREAM\tSTATUS\tORDERING\tKINESIS STREAM\tREASON")
		for _, s := range v {
			kinesis := s.KinesisStreamArn[strings.LastIndex(s.KinesisStreamArn, "/")+1:]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.StreamIdentifier, s.Status, s.Ordering, kinesis, cmp.Or(s.StatusReason, &api.StatusReason{}).Code)
		}
	case api.Stream:
		describe(tw, v)
	}
	return tw.Flush()
}

// describe prints a stream as "key: value" lines, leaving out empty values.
func describe(w io.Writer, s api.Stream) {
	var reason, message string
	if r := s.StatusReason; r != nil {
		reason, message = r.Code+" since "+r.UpdatedAt.UTC().Format(time.RFC3339), r.Message
	}
	lines := [][2]string{{"stream", s.StreamIdentifier}, {"cluster", s.ClusterIdentifier}, {"arn", s.Arn}, {"status", s.Status},
		{"status reason", reason}, {"status message", message}, {"format", s.Format}, {"ordering", s.Ordering},
		{"created", s.CreationTime.UTC().Format(time.RFC3339)}, {"kinesis stream", s.KinesisStreamArn}, {"role", s.RoleArn}}
	for _, k := range slices.Sorted(maps.Keys(s.Tags)) {
		lines = append(lines, [2]string{"tag " + k, s.Tags[k]})
	}
	for _, l := range append(append(lines, s.Progress()...), [2]string{"source", string(s.Source)}, [2]string{"target", string(s.Target)}) {
		if l[1] != "" {
			fmt.Fprintf(w, "%s:\t%s\n", l[0], l[1])
		}
	}
}
