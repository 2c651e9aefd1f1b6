package sink

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// DescribeAPI is the Kinesis call DescribeTarget makes.
type DescribeAPI interface {
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

var _ DescribeAPI = (*kinesis.Client)(nil)

// Target is what the sink needs to know about the stream it writes to.
type Target struct {
	StreamName     string
	StreamARN      string
	Status         string
	Shards         int    // open shards
	MaxRecordBytes int    // MaxRecordSizeInKiB × 1024, or 1 MiB when not reported
	EncryptionType string // "NONE" or "KMS"
	KeyID          string // the target key when EncryptionType is KMS
}

// MaxRequestBytes is the request limit that goes with the record limit:
// 5 MiB, or 10 MiB for a stream that accepts records over 5 MiB.
func (t Target) MaxRequestBytes() int {
	if t.MaxRecordBytes > DefaultRequestMax {
		return LargeRequestMax
	}
	return DefaultRequestMax
}

// DescribeTarget reads the target stream's limits at start. The stream is
// addressed by name when one is given (kinesalite rejects ARN-only
// requests), otherwise by ARN. Streams, and emulators such as kinesalite,
// that do not report MaxRecordSizeInKiB get the 1 MiB default. Errors
// classify with Classify (ResourceNotFoundException → stream not found).
func DescribeTarget(ctx context.Context, api DescribeAPI, streamName, streamARN string) (Target, error) {
	in := &kinesis.DescribeStreamSummaryInput{}
	if streamName != "" {
		in.StreamName = aws.String(streamName)
	} else {
		in.StreamARN = aws.String(streamARN)
	}
	out, err := api.DescribeStreamSummary(ctx, in)
	if err != nil {
		return Target{}, fmt.Errorf("describe stream summary: %w", err)
	}
	d := out.StreamDescriptionSummary
	if d == nil {
		return Target{}, fmt.Errorf("describe stream summary: response has no StreamDescriptionSummary")
	}
	t := Target{
		StreamName:     aws.ToString(d.StreamName),
		StreamARN:      aws.ToString(d.StreamARN),
		Status:         string(d.StreamStatus),
		Shards:         int(aws.ToInt32(d.OpenShardCount)),
		MaxRecordBytes: DefaultRecordMax,
		EncryptionType: string(d.EncryptionType),
		KeyID:          aws.ToString(d.KeyId),
	}
	if t.EncryptionType == "" {
		t.EncryptionType = "NONE"
	}
	if kib := aws.ToInt32(d.MaxRecordSizeInKiB); kib > 0 {
		t.MaxRecordBytes = int(kib) << 10
	}
	return t, nil
}
