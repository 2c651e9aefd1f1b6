// Package localstack_test checks cdcd's AWS assumptions against LocalStack
// (Kinesis on kinesis-mock, KMS, STS) in a container: server-side encryption
// with a KMS key and StreamARN addressing, which kinesalite lacks; and it
// builds and runs cdcd's own container image (image_test.go). It needs a
// Docker engine and skips cleanly without one.
package localstack_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/modules/localstack"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// defaultImage is the last LocalStack release that starts without an auth
// token (later images require LOCALSTACK_AUTH_TOKEN). Override with
// CDCD_LOCALSTACK_IMAGE; LOCALSTACK_AUTH_TOKEN is passed through when set.
const defaultImage = "localstack/localstack:4.14.0"

// startLocalStack runs LocalStack with Kinesis, KMS and STS for the test and
// returns its endpoint, or skips when no container provider answers.
func startLocalStack(t *testing.T) string {
	t.Helper()
	testcontainers.SkipIfProviderIsNotHealthy(t)
	if testing.Short() {
		t.Skip("LocalStack takes tens of seconds to start; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	image := os.Getenv("CDCD_LOCALSTACK_IMAGE")
	if image == "" {
		image = defaultImage
	}
	env := map[string]string{"SERVICES": "kinesis,kms,sts", "KINESIS_LATENCY": "0"}
	if token := os.Getenv("LOCALSTACK_AUTH_TOKEN"); token != "" {
		env["LOCALSTACK_AUTH_TOKEN"] = token
	}
	ctr, err := localstack.Run(ctx, image, testcontainers.WithEnv(env))
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		t.Fatalf("start %s: %v", image, err)
	}
	endpoint, err := ctr.PortEndpoint(ctx, "4566/tcp", "http")
	if err != nil {
		t.Fatalf("LocalStack endpoint: %v", err)
	}
	return endpoint
}

func TestEncryptedStreamRoundTrip(t *testing.T) {
	endpoint := startLocalStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := testenv.Env{Region: "us-east-1", KinesisEndpoint: endpoint, KMSEndpoint: endpoint}

	stsClient := sts.NewFromConfig(testenv.AWSConfig(env), func(o *sts.Options) { o.BaseEndpoint = aws.String(endpoint) })
	id, err := stsClient.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("sts GetCallerIdentity: %v", err)
	}
	t.Logf("caller %s in account %s", aws.ToString(id.Arn), aws.ToString(id.Account))

	kmsClient := testenv.KMSClient(t, env, "")
	keyARN := testenv.CreateKey(t, kmsClient)

	kin := testenv.KinesisClient(t, env, "")
	name := testenv.StreamName(t)
	streamARN := testenv.CreateStream(t, kin, name, 1)

	if _, err := kin.StartStreamEncryption(ctx, &kinesis.StartStreamEncryptionInput{
		StreamName:     aws.String(name),
		EncryptionType: types.EncryptionTypeKms,
		KeyId:          aws.String(keyARN),
	}); err != nil {
		t.Fatalf("StartStreamEncryption: %v", err)
	}
	// Encryption passes through UPDATING; address the stream by ARN here,
	// as cdcd does against AWS.
	for {
		out, err := kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamARN: aws.String(streamARN)})
		if err != nil {
			t.Fatalf("DescribeStreamSummary by ARN: %v", err)
		}
		s := out.StreamDescriptionSummary
		if s.StreamStatus == types.StreamStatusActive && s.EncryptionType == types.EncryptionTypeKms {
			if aws.ToString(s.KeyId) != keyARN {
				t.Errorf("stream key %q, want %q", aws.ToString(s.KeyId), keyARN)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stream never became ACTIVE with KMS encryption: %s %s", s.StreamStatus, s.EncryptionType)
		case <-time.After(200 * time.Millisecond):
		}
	}

	// The data key a Kinesis stream would use: GenerateDataKey with the
	// stream's encryption context, as the service role's policy allows.
	encCtx := map[string]string{"aws:kinesis:arn": streamARN}
	if _, err := kmsClient.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId: aws.String(keyARN), KeySpec: "AES_256", EncryptionContext: encCtx,
	}); err != nil {
		t.Fatalf("GenerateDataKey: %v", err)
	}

	want := []string{`{"n":1}`, `{"n":2}`, `{"n":3}`}
	in := &kinesis.PutRecordsInput{StreamName: aws.String(name)}
	for _, d := range want {
		in.Records = append(in.Records, types.PutRecordsRequestEntry{Data: []byte(d), PartitionKey: aws.String("k")})
	}
	put, err := kin.PutRecords(ctx, in)
	if err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	if aws.ToInt32(put.FailedRecordCount) != 0 {
		t.Fatalf("PutRecords: %d records failed", aws.ToInt32(put.FailedRecordCount))
	}
	if put.EncryptionType != types.EncryptionTypeKms {
		t.Errorf("PutRecords EncryptionType %q, want KMS", put.EncryptionType)
	}

	shards, err := kin.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatalf("ListShards: %v", err)
	}
	it, err := kin.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(name), ShardId: shards.Shards[0].ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		t.Fatalf("GetShardIterator: %v", err)
	}
	var got []string
	iter := it.ShardIterator
	for len(got) < len(want) && iter != nil {
		out, err := kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			t.Fatalf("GetRecords: %v", err)
		}
		for _, r := range out.Records {
			got = append(got, string(r.Data))
			if r.EncryptionType != types.EncryptionTypeKms {
				t.Errorf("record %s: EncryptionType %q, want KMS", r.Data, r.EncryptionType)
			}
		}
		iter = out.NextShardIterator
		if len(out.Records) == 0 {
			select {
			case <-ctx.Done():
				t.Fatalf("read %d of %d records", len(got), len(want))
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("read %q, want %q", got, want)
	}
}
