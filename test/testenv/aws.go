package testenv

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dsql"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/cdcd-dev/cdcd/retry"
)

// Dummy credentials: the local servers accept any signature.
const (
	AccessKeyID     = "cdcdtestaccesskey"
	SecretAccessKey = "cdcdtestsecretkey"
)

// pollInterval paces the waits for stream and slot state changes.
const pollInterval = 50 * time.Millisecond

// AWSConfig returns a configuration with static dummy credentials and the
// environment's region. It is built directly rather than with
// config.LoadDefaultConfig: nothing from the machine (profiles, IMDS,
// AWS_CA_BUNDLE, which breaks a custom HTTP client there) leaks in.
func AWSConfig(env Env) aws.Config {
	return aws.Config{
		Region:      env.Region,
		Credentials: credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
	}
}

// KinesisClient returns a client for endpoint, or for env.KinesisEndpoint
// when endpoint is empty (pass a faultproxy's URL to inject faults).
func KinesisClient(t testing.TB, env Env, endpoint string, optFns ...func(*kinesis.Options)) *kinesis.Client {
	t.Helper()
	if endpoint == "" {
		endpoint = env.KinesisEndpoint
	}
	opts := append([]func(*kinesis.Options){func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	}}, optFns...)
	return kinesis.NewFromConfig(AWSConfig(env), opts...)
}

// KMSClient returns a client for endpoint, or for env.KMSEndpoint when
// endpoint is empty.
func KMSClient(t testing.TB, env Env, endpoint string, optFns ...func(*kms.Options)) *kms.Client {
	t.Helper()
	if endpoint == "" {
		endpoint = env.KMSEndpoint
	}
	opts := append([]func(*kms.Options){func(o *kms.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	}}, optFns...)
	return kms.NewFromConfig(AWSConfig(env), opts...)
}

// ControlPlane returns the AWS SDK's DSQL client pointed at the control
// plane of a daemon listening on listen (host:port).
func ControlPlane(env Env, listen string) *dsql.Client {
	return dsql.New(dsql.Options{
		Region:       env.Region,
		BaseEndpoint: aws.String("http://" + listen),
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
	})
}

// StreamName returns a Kinesis stream name unique to this test and process.
func StreamName(t testing.TB) string {
	t.Helper()
	return UniqueName(t, 128)
}

// CreateStream creates a provisioned stream with shards shards, waits until
// it is ACTIVE and returns its ARN. Cleanup deletes it (a test may delete it
// first). Streams are named, not addressed by ARN: kinesalite rejects
// requests that carry only StreamARN.
func CreateStream(t testing.TB, client *kinesis.Client, name string, shards int32) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if _, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName: aws.String(name),
		ShardCount: aws.Int32(shards),
	}); err != nil {
		t.Fatalf("testenv: create stream %s: %v", name, err)
	}
	t.Cleanup(func() { deleteStream(t, client, name) })

	for {
		out, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			t.Fatalf("testenv: describe stream %s: %v", name, err)
		}
		s := out.StreamDescriptionSummary
		if s.StreamStatus == kinesistypes.StreamStatusActive {
			return aws.ToString(s.StreamARN)
		}
		if retry.Sleep(ctx, pollInterval) != nil {
			t.Fatalf("testenv: stream %s still %s after %v", name, s.StreamStatus, opTimeout)
		}
	}
}

func deleteStream(t testing.TB, client *kinesis.Client, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_, err := client.DeleteStream(ctx, &kinesis.DeleteStreamInput{
		StreamName:              aws.String(name),
		EnforceConsumerDeletion: aws.Bool(true),
	})
	var notFound *kinesistypes.ResourceNotFoundException
	if err != nil && !errors.As(err, &notFound) {
		t.Errorf("testenv: delete stream %s: %v", name, err)
	}
}

// ReadStream reads every shard of a Kinesis stream from the start to its
// end and returns each shard's records' Data in shard order.
func ReadStream(ctx context.Context, client *kinesis.Client, stream string) ([][][]byte, error) {
	ls, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		return nil, fmt.Errorf("list shards: %w", err)
	}
	if ls.NextToken != nil {
		return nil, errors.New("list shards: more than one page; tests create a handful")
	}
	var out [][][]byte
	for _, s := range ls.Shards {
		it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: s.ShardId, ShardIteratorType: kinesistypes.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			return nil, fmt.Errorf("shard iterator %s: %w", aws.ToString(s.ShardId), err)
		}
		var recs [][]byte
		iter := it.ShardIterator
		for iter != nil {
			res, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
			if err != nil {
				return nil, fmt.Errorf("get records from %s: %w", aws.ToString(s.ShardId), err)
			}
			for _, r := range res.Records {
				recs = append(recs, r.Data)
			}
			iter = res.NextShardIterator
			if len(res.Records) == 0 && aws.ToInt64(res.MillisBehindLatest) == 0 {
				break // the end of an open shard
			}
		}
		out = append(out, recs)
	}
	return out, nil
}

// CreateKey creates a symmetric encryption key and returns its ARN. Cleanup
// schedules its deletion (ignoring a key a test already scheduled).
func CreateKey(t testing.TB, client *kms.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	out, err := client.CreateKey(ctx, &kms.CreateKeyInput{
		Description: aws.String("cdcd test " + t.Name()),
		KeySpec:     kmstypes.KeySpecSymmetricDefault,
		KeyUsage:    kmstypes.KeyUsageTypeEncryptDecrypt,
	})
	if err != nil {
		t.Fatalf("testenv: create KMS key: %v", err)
	}
	arn := aws.ToString(out.KeyMetadata.Arn)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		_, err := client.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{
			KeyId:               aws.String(arn),
			PendingWindowInDays: aws.Int32(7),
		})
		var invalid *kmstypes.KMSInvalidStateException
		if err != nil && !errors.As(err, &invalid) {
			t.Errorf("testenv: schedule deletion of KMS key %s: %v", arn, err)
		}
	})
	return arn
}
