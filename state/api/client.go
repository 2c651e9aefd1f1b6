package api

// This file is the client side, for the cdcd streams command: the AWS SDK's
// dsql client pointed at a control plane, and cdcd's own GetStream members,
// which the SDK does not decode, read from the same answer.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dsql"
	"github.com/aws/aws-sdk-go-v2/service/dsql/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Stream is a stream as GetStream describes it; as JSON, its times are in
// RFC 3339.
type Stream struct {
	StreamIdentifier  string            `json:"streamIdentifier"`
	ClusterIdentifier string            `json:"clusterIdentifier"`
	Arn               string            `json:"arn"`
	Status            string            `json:"status"`
	Format            string            `json:"format,omitempty"`
	Ordering          string            `json:"ordering,omitempty"`
	CreationTime      time.Time         `json:"creationTime"`
	KinesisStreamArn  string            `json:"kinesisStreamArn,omitempty"`
	RoleArn           string            `json:"roleArn,omitempty"`
	Tags              map[string]string `json:"tags,omitempty"`
	StatusReason      *StatusReason     `json:"statusReason,omitempty"`
	// Source and Target are cdcd's members of GetStream, as sent
	// (docs/api.md#getstream).
	Source json.RawMessage `json:"source,omitempty"`
	Target json.RawMessage `json:"target,omitempty"`
}

// StatusReason says why a stream is IMPAIRED or FAILED
// (docs/lifecycle.md#codes).
type StatusReason struct {
	Code      string    `json:"error"`
	UpdatedAt time.Time `json:"updatedAt"`
	Message   string    `json:"message,omitempty"`
}

// ClientOptions is where a control plane is and how to reach it.
type ClientOptions struct {
	// Endpoint is an http:// or https:// URL.
	Endpoint string
	// Region is the SDK's; cdcd ignores it.
	Region string
	// CAFile holds PEM certificates that sign the control plane's TLS
	// certificate; empty trusts the system's roots.
	CAFile string
	// CertFile and KeyFile are the client certificate of api.auth = "mtls".
	CertFile, KeyFile string
	// TokenFile holds the token of api.auth = "token", sent in TokenHeader.
	TokenFile string
}

// guarded reports whether o carries credentials for a guarded cdcd.
func (o ClientOptions) guarded() bool { return o.CertFile != "" || o.TokenFile != "" }

// transport is the HTTP transport o asks for: its roots, its client
// certificate, and its token in every request.
func (o ClientOptions) transport() (http.RoundTripper, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, err
		}
		if tr.TLSClientConfig.RootCAs, err = parsePool(pem); err != nil {
			return nil, fmt.Errorf("%s %w", o.CAFile, err)
		}
	}
	if o.CertFile != "" || o.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	}
	if o.TokenFile == "" {
		return tr, nil
	}
	b, err := os.ReadFile(o.TokenFile)
	if err != nil {
		return nil, err
	}
	token, err := parseToken(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.TokenFile, err)
	}
	u, err := url.Parse(o.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("control plane endpoint %q: %w", o.Endpoint, err)
	}
	return tokenTransport{next: tr, host: u.Host, token: string(token)}, nil
}

// tokenTransport adds the token to each request to the control plane's
// host, after the SDK has signed it: the token is not part of the
// signature, which cdcd does not check. A redirect elsewhere goes without.
type tokenTransport struct {
	next        http.RoundTripper
	host, token string
}

func (t tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == t.host {
		r = r.Clone(r.Context())
		r.Header.Set(TokenHeader, t.token)
	}
	return t.next.RoundTrip(r)
}

// NewClient returns the SDK's dsql client for the control plane that o
// describes. The control plane does not verify SigV4, so one on this host,
// or one given a token or client certificate (a guarded cdcd), is called
// with static dummy credentials; any other endpoint gets the configuration
// load returns, whose credentials AWS's own endpoint would need.
func NewClient(ctx context.Context, o ClientOptions, load func(context.Context, string) (aws.Config, error)) (*dsql.Client, error) {
	u, err := url.Parse(o.Endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("control plane endpoint %q: want an http:// or https:// URL", o.Endpoint)
	}
	set := func(d *dsql.Options) { d.BaseEndpoint = aws.String(o.Endpoint) }
	if o.CAFile != "" || o.guarded() {
		rt, err := o.transport()
		if err != nil {
			return nil, err
		}
		set = func(d *dsql.Options) {
			d.BaseEndpoint, d.HTTPClient = aws.String(o.Endpoint), &http.Client{Transport: rt}
		}
	}
	if ip := net.ParseIP(u.Hostname()); o.guarded() || u.Hostname() == "localhost" || ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
		return dsql.New(dsql.Options{Region: o.Region, Credentials: credentials.NewStaticCredentialsProvider("cdcd", "cdcd", "")}, set), nil
	}
	cfg, err := load(ctx, o.Region)
	if err != nil {
		return nil, err
	}
	return dsql.NewFromConfig(cfg, set), nil
}

// Fields are s as "key", "value" pairs for a person, in the order that
// reads best, leaving out empty values.
func (s Stream) Fields() [][2]string {
	var reason, message string
	if r := s.StatusReason; r != nil {
		reason, message = r.Code+" since "+r.UpdatedAt.UTC().Format(time.RFC3339), r.Message
	}
	all := [][2]string{{"stream", s.StreamIdentifier}, {"cluster", s.ClusterIdentifier}, {"arn", s.Arn}, {"status", s.Status},
		{"status reason", reason}, {"status message", message}, {"format", s.Format}, {"ordering", s.Ordering},
		{"created", s.CreationTime.UTC().Format(time.RFC3339)}, {"kinesis stream", s.KinesisStreamArn}, {"role", s.RoleArn}}
	for _, k := range slices.Sorted(maps.Keys(s.Tags)) {
		all = append(all, [2]string{"tag " + k, s.Tags[k]})
	}
	all = append(append(all, s.Progress()...), [2]string{"source", string(s.Source)}, [2]string{"target", string(s.Target)})
	return slices.DeleteFunc(all, func(f [2]string) bool { return f[1] == "" })
}

// Progress describes, in words, how far the stream is behind its source
// and how far its initial snapshot got, from Source; nothing for what
// Source does not say.
func (s Stream) Progress() [][2]string {
	var src struct {
		LagSeconds *float64      `json:"lagSeconds"`
		LagBytes   *int64        `json:"lagBytes"`
		Snapshot   *snapshotJSON `json:"snapshot"`
	}
	if json.Unmarshal(s.Source, &src) != nil {
		return nil
	}
	var out [][2]string
	if src.LagSeconds != nil {
		lag := time.Duration(*src.LagSeconds * float64(time.Second)).Round(time.Millisecond).String()
		if src.LagBytes != nil {
			lag += fmt.Sprintf(", %d bytes of WAL", *src.LagBytes)
		}
		out = append(out, [2]string{"lag", lag})
	}
	if p := src.Snapshot; p != nil {
		snap := fmt.Sprintf("%d of %d tables, %d rows", p.TablesDone, p.Tables, p.Rows)
		switch {
		case p.Done:
			snap = fmt.Sprintf("done: %d tables, %d rows", p.Tables, p.Rows)
		case p.EstimatedRows > 0:
			snap += fmt.Sprintf(" of about %d", p.EstimatedRows)
		}
		if p.Table != "" {
			snap += ", reading " + p.Table
		}
		out = append(out, [2]string{"snapshot", snap})
	}
	return out
}

// Table is streams as rows for a person: a header, then a row per stream.
func Table(streams []Stream) [][]string {
	rows := [][]string{{"STREAM", "STATUS", "ORDERING", "KINESIS STREAM", "REASON"}}
	for _, s := range streams {
		var reason string
		if s.StatusReason != nil {
			reason = s.StatusReason.Code
		}
		kinesis := s.KinesisStreamArn[strings.LastIndex(s.KinesisStreamArn, "/")+1:]
		rows = append(rows, []string{s.StreamIdentifier, s.Status, s.Ordering, kinesis, reason})
	}
	return rows
}

// GetStream describes one stream.
func GetStream(ctx context.Context, c *dsql.Client, cluster, stream string) (Stream, error) {
	out, err := c.GetStream(ctx, &dsql.GetStreamInput{ClusterIdentifier: &cluster, StreamIdentifier: &stream},
		func(o *dsql.Options) { o.APIOptions = append(o.APIOptions, keepExtras) })
	if err != nil {
		return Stream{}, clientError(err)
	}
	s := clientSummary(out.Arn, out.ClusterIdentifier, out.StreamIdentifier, out.CreationTime, out.Status)
	s.Format, s.Ordering, s.Tags = string(out.Format), string(out.Ordering), out.Tags
	if k, ok := out.TargetDefinition.(*types.TargetDefinitionMemberKinesis); ok {
		s.KinesisStreamArn, s.RoleArn = aws.ToString(k.Value.StreamArn), aws.ToString(k.Value.RoleArn)
	}
	x, _ := out.ResultMetadata.Get(extrasKey{}).(extras)
	s.Source, s.Target = x.Source, x.Target
	if r := out.StatusReason; r != nil {
		s.StatusReason = &StatusReason{Code: string(r.Error), UpdatedAt: aws.ToTime(r.UpdatedAt)}
		if x.StatusReason != nil {
			s.StatusReason.Message = x.StatusReason.Message
		}
	}
	return s, nil
}

// ListStreams describes every stream of a cluster, in ListStreams' order.
// ListStreams' summaries lack what GetStream adds, so each stream is
// described with GetStream; one deleted in between is left out.
func ListStreams(ctx context.Context, c *dsql.Client, cluster string) ([]Stream, error) {
	streams := []Stream{}
	pages := dsql.NewListStreamsPaginator(c, &dsql.ListStreamsInput{ClusterIdentifier: &cluster, MaxResults: aws.Int32(maxMaxResults)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, clientError(err)
		}
		for _, sum := range page.Streams {
			s, err := GetStream(ctx, c, cluster, aws.ToString(sum.StreamIdentifier))
			var gone *types.ResourceNotFoundException
			if errors.As(err, &gone) {
				continue
			}
			if err != nil {
				return nil, err
			}
			streams = append(streams, s)
		}
	}
	return streams, nil
}

// CreateStream creates a stream and returns what CreateStream says of it.
func CreateStream(ctx context.Context, c *dsql.Client, in *dsql.CreateStreamInput) (Stream, error) {
	out, err := c.CreateStream(ctx, in)
	if err != nil {
		return Stream{}, clientError(err)
	}
	s := clientSummary(out.Arn, out.ClusterIdentifier, out.StreamIdentifier, out.CreationTime, out.Status)
	s.Format, s.Ordering = string(out.Format), string(out.Ordering)
	return s, nil
}

// DeleteStream starts deleting a stream and returns what DeleteStream says
// of it.
func DeleteStream(ctx context.Context, c *dsql.Client, cluster, stream string) (Stream, error) {
	out, err := c.DeleteStream(ctx, &dsql.DeleteStreamInput{ClusterIdentifier: &cluster, StreamIdentifier: &stream})
	if err != nil {
		return Stream{}, clientError(err)
	}
	return clientSummary(out.Arn, out.ClusterIdentifier, out.StreamIdentifier, out.CreationTime, out.Status), nil
}

func clientSummary(arn, cluster, stream *string, created *time.Time, status types.StreamStatus) Stream {
	return Stream{Arn: aws.ToString(arn), ClusterIdentifier: aws.ToString(cluster), StreamIdentifier: aws.ToString(stream),
		CreationTime: aws.ToTime(created), Status: string(status)}
}

// clientError keeps what a person needs of an SDK error: the AWS error the
// control plane answered, or, when there was no answer, the hint that
// nothing may be listening.
func clientError(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return answerError{ae, err}
	}
	return fmt.Errorf("reach the control plane (is cdcd run listening there?): %w", err)
}

// answerError reads "ConflictException: message" and wraps the SDK's error,
// so that errors.As still finds the typed one.
type answerError struct {
	smithy.APIError
	err error
}

func (e answerError) Error() string { return e.ErrorCode() + ": " + e.ErrorMessage() }
func (e answerError) Unwrap() error { return e.err }

// extras are the members cdcd adds to GetStream's answer.
type extras struct {
	StatusReason *struct {
		Message string `json:"message"`
	} `json:"statusReason"`
	Source json.RawMessage `json:"source"`
	Target json.RawMessage `json:"target"`
}

// extrasKey is where keepExtras leaves them in the output's metadata.
type extrasKey struct{}

// keepExtras reads extras from the raw answer, ahead of the SDK's decoder,
// which ignores them.
func keepExtras(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("cdcdExtras", func(ctx context.Context, in middleware.DeserializeInput,
		next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
		out, md, err := next.HandleDeserialize(ctx, in)
		resp, ok := out.RawResponse.(*smithyhttp.Response)
		if err != nil || !ok || resp.StatusCode/100 != 2 {
			return out, md, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		var x extras
		if json.Unmarshal(body, &x) == nil {
			md.Set(extrasKey{}, x)
		}
		return out, md, err
	}), middleware.After)
}
