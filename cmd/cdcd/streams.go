package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/aws/aws-sdk-go-v2/service/dsql"
	"github.com/aws/aws-sdk-go-v2/service/dsql/types"

	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/state/api"
)

const streamsUsage = `usage:
  cdcd streams list   --cluster ID                       list a cluster's streams
  cdcd streams get    --cluster ID --stream ID           show one stream, with its source and target
  cdcd streams create --cluster ID --kinesis-stream-arn ARN --role-arn ARN [--ordering UNORDERED|ROW] [--client-token T] [--tag k=v ...]
  cdcd streams delete --cluster ID --stream ID
Each takes --config FILE or --endpoint URL, --ca-file and --cert-file/--key-file or --token-file, and --json.
`

// cmdStreams drives the daemon's control plane (docs/api.md) with the AWS
// SDK's dsql client.
func cmdStreams(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"streams needs a subcommand: list, get, create or delete\n\n" + streamsUsage}
	}
	sub, args := args[0], args[1:]
	fs := newFlags("streams "+sub, stderr)
	path, opts := daemonFlags(fs, "endpoint", "control plane URL (default: the config's listen, else http://"+config.DefaultListen+")")
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
	c, cfg, err := pipeline.Dial(ctx, *path, *opts)
	if err != nil {
		return err
	}
	if *cluster = cfg.ClusterID(*cluster); *cluster == "" {
		return usageError{"streams needs --cluster ID (the identifier GetStream and the stream ARN show)"}
	}
	if (sub == "get" || sub == "delete") && *stream == "" {
		return usageError{"streams " + sub + " needs --stream ID"}
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
		for _, row := range api.Table(v) {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
	case api.Stream:
		for _, f := range v.Fields() {
			fmt.Fprintf(tw, "%s:\t%s\n", f[0], f[1])
		}
	}
	return tw.Flush()
}

// cmdHealth prints what the daemon's /healthz (with --ready, /readyz)
// answers, and fails unless that is 200.
func cmdHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("health", stderr)
	ready := fs.Bool("ready", false, "check /readyz (every stream ACTIVE) rather than /healthz")
	path, opts := daemonFlags(fs, "addr", "HOST:PORT, or https://HOST:PORT, to check (default: the config's metrics_listen, else its listen)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	line, err := pipeline.Health(ctx, *path, *opts, *ready)
	if err == nil {
		fmt.Fprintln(stdout, line)
	}
	return err
}

// daemonFlags adds the flags that find the daemon and authenticate to it;
// addr names the flag of its address.
func daemonFlags(fs *flag.FlagSet, addr, usage string) (*string, *api.ClientOptions) {
	o := &api.ClientOptions{}
	fs.StringVar(&o.Endpoint, addr, "", usage)
	fs.StringVar(&o.CAFile, "ca-file", "", "PEM CA certificates that sign the daemon's TLS certificate (default: the system's)")
	fs.StringVar(&o.CertFile, "cert-file", "", "client certificate (PEM), for api.auth = \"mtls\"")
	fs.StringVar(&o.KeyFile, "key-file", "", "the client certificate's key (PEM)")
	fs.StringVar(&o.TokenFile, "token-file", "", "file holding the token, for api.auth = \"token\" (default: the config's api.token_file)")
	return fs.String("config", "", "the daemon's configuration file, for its address, TLS and token file"), o
}
