package api

// This file is the client side, for the cdcd streams command: the AWS SDK's
// dsql client pointed at a control plane, and cdcd's own GetStream members,
// which the SDK does not decode, read from the same answer.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
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

// NewClient returns the SDK's dsql client for the control plane at
// endpoint, in region. The control plane does not verify SigV4 (see
// DefaultAddr), so one on this host is called with static dummy
// credentials; any other endpoint gets the configuration load returns,
// whose credentials AWS's own endpoint would need.
func NewClient(ctx context.Context, endpoint, region string, load func(context.Context, string) (aws.Config, error)) (*dsql.Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("control plane endpoint %q: want an http:// or https:// URL", endpoint)
	}
	setEndpoint := func(o *dsql.Options) { o.BaseEndpoint = aws.String(endpoint) }
	if ip := net.ParseIP(u.Hostname()); u.Hostname() == "localhost" || ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
		return dsql.New(dsql.Options{Region: region, Credentials: credentials.NewStaticCredentialsProvider("cdcd", "cdcd", "")}, setEndpoint), nil
	}
	cfg, err := load(ctx, region)
	if err != nil {
		return nil, err
	}
	return dsql.NewFromConfig(cfg, setEndpoint), nil
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
