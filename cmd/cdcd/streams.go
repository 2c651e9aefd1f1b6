package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/config"
)

const streamsUsage = `usage:
  cdcd streams list   --cluster ID                       list a cluster's streams
  cdcd streams get    --cluster ID --stream ID           show one stream, with its source and target
  cdcd streams create --cluster ID --kinesis-stream-arn ARN --role-arn ARN [--ordering UNORDERED|ROW] [--client-token T] [--tag k=v ...]
  cdcd streams delete --cluster ID --stream ID
Each takes --config FILE (to find the daemon's listen address) or --endpoint URL.
`

// cmdStreams drives the daemon's control plane (docs/api.md) from the command
// line. It speaks the same REST-JSON as the AWS SDK's dsql client and
// prints the daemon's answers as they are.
func cmdStreams(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"streams needs a subcommand: list, get, create or delete\n\n" + streamsUsage}
	}
	sub, args := args[0], args[1:]
	fs := newFlags("streams "+sub, stderr)
	path := fs.String("config", "", "configuration file whose listen address to use")
	endpoint := fs.String("endpoint", "", "control plane URL (default: http:// + the config's listen)")
	cluster := fs.String("cluster", "", "cluster identifier (26 characters); default: the config's only cluster identifier")
	stream := fs.String("stream", "", "stream identifier")
	kinARN := fs.String("kinesis-stream-arn", "", "target Kinesis data stream ARN")
	roleARN := fs.String("role-arn", "", "role cdcd assumes to write the target")
	ordering := fs.String("ordering", "UNORDERED", "UNORDERED or ROW")
	token := fs.String("client-token", "", "idempotency token; a retried create with the same token returns the same stream")
	var tags tagFlags
	fs.Var(&tags, "tag", "tag as key=value; repeatable")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	base := *endpoint
	if *path != "" {
		cfg, err := config.Load(*path)
		if err != nil {
			return err
		}
		if base == "" {
			base = "http://" + cfg.Listen
		}
		if *cluster == "" && len(cfg.Clusters) == 1 {
			*cluster = cfg.Clusters[0].Identifier
		}
	}
	if base == "" {
		return usageError{"streams needs --config FILE or --endpoint URL"}
	}
	if *cluster == "" {
		return usageError{"streams needs --cluster ID (the identifier GetStream and the stream ARN show)"}
	}
	c := &controlClient{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 30 * time.Second}}
	cl := url.PathEscape(*cluster)
	var (
		body []byte
		err  error
	)
	switch sub {
	case "list":
		body, err = c.do(ctx, http.MethodGet, "/stream/"+cl+"?max-results=100", nil)
	case "get":
		if *stream == "" {
			return usageError{"streams get needs --stream ID"}
		}
		body, err = c.do(ctx, http.MethodGet, "/stream/"+cl+"/"+url.PathEscape(*stream), nil)
	case "create":
		if *kinARN == "" || *roleARN == "" {
			return usageError{"streams create needs --kinesis-stream-arn and --role-arn"}
		}
		req := map[string]any{"format": "JSON", "ordering": *ordering,
			"targetDefinition": map[string]any{"kinesis": map[string]string{"streamArn": *kinARN, "roleArn": *roleARN}}}
		if *token != "" {
			req["clientToken"] = *token
		}
		if len(tags) > 0 {
			req["tags"] = map[string]string(tags)
		}
		body, err = c.do(ctx, http.MethodPost, "/stream/"+cl, req)
	case "delete":
		if *stream == "" {
			return usageError{"streams delete needs --stream ID"}
		}
		body, err = c.do(ctx, http.MethodDelete, "/stream/"+cl+"/"+url.PathEscape(*stream), nil)
	default:
		return usageError{fmt.Sprintf("unknown streams subcommand %q\n\n%s", sub, streamsUsage)}
	}
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if json.Indent(&out, body, "", "  ") != nil {
		out.Reset()
		out.Write(body)
	}
	out.WriteByte('\n')
	_, err = stdout.Write(out.Bytes())
	return err
}

// tagFlags collects repeated --tag key=value flags.
type tagFlags map[string]string

func (t *tagFlags) String() string { return fmt.Sprint(map[string]string(*t)) }

func (t *tagFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", v)
	}
	if *t == nil {
		*t = tagFlags{}
	}
	(*t)[k] = val
	return nil
}

type controlClient struct {
	base string
	http *http.Client
}

// do sends one request and returns the body of a 2xx answer; other answers
// become errors in the AWS shape: "ConflictException: message".
func (c *controlClient) do(ctx context.Context, method, path string, in any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach the control plane at %s (is cdcd run listening there?): %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return b, nil
	}
	var e struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(b, &e)
	kind := resp.Header.Get("X-Amzn-Errortype")
	if i := strings.IndexAny(kind, ":"); i >= 0 {
		kind = kind[:i]
	}
	if kind == "" {
		kind = resp.Status
	}
	return nil, fmt.Errorf("%s: %s", kind, e.Message)
}
