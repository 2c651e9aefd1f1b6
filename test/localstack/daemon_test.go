package localstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// TestDaemonThroughLocalStack runs the daemon end to end with every AWS
// dependency in LocalStack: it assumes a role through STS, checks a cluster
// key in KMS, and writes to a KMS-encrypted Kinesis stream addressed the way
// it is on AWS. PostgreSQL comes from test/infra as for the other tests.
func TestDaemonThroughLocalStack(t *testing.T) {
	endpoint := startLocalStack(t)
	pg := testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env := testenv.Env{Region: "us-east-1", KinesisEndpoint: endpoint, KMSEndpoint: endpoint}

	kmsClient := testenv.KMSClient(t, env, "")
	keyARN := testenv.CreateKey(t, kmsClient)
	kin := testenv.KinesisClient(t, env, "")
	name := testenv.StreamName(t)
	streamARN := testenv.CreateStream(t, kin, name, 2)
	if _, err := kin.StartStreamEncryption(ctx, &kinesis.StartStreamEncryptionInput{
		StreamName: aws.String(name), EncryptionType: types.EncryptionTypeKms, KeyId: aws.String(keyARN),
	}); err != nil {
		t.Fatalf("StartStreamEncryption: %v", err)
	}

	dsn := testenv.CreateDB(t, pg)
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	if _, err := db.Exec(ctx, `CREATE TABLE items (id int PRIMARY KEY, v text)`); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(dsn)
	password, _ := u.User.Password()
	u.User = url.User(u.User.Username())

	bin := filepath.Join(t.TempDir(), "cdcd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/cdcd-dev/cdcd/cmd/cdcd").CombinedOutput(); err != nil {
		t.Fatalf("build cdcd: %v\n%s", err, out)
	}
	listen := testenv.FreeAddr(t)
	const (
		role      = "arn:aws:iam::000000000000:role/cdcd-localstack"
		clusterID = "localstackclusterxxxxxxxxx"
		streamID  = "localstackstreamxxxxxxxxxx"
	)
	cfg := fmt.Sprintf(`
state_dir = %q
listen = %q
[aws]
region = "us-east-1"
kinesis_endpoint = %q
sts_endpoint = %q
kms_endpoint = %q
role_arn_allow = [%q]
[[cluster]]
name = "src"
identifier = %q
dsn = %q
password_env = "CDCD_LS_PG_PASSWORD"
cluster_key_arn = %q
[[stream]]
name = "ls"
identifier = %q
cluster = "src"
tables = ["public.items"]
slot = %q
set_replica_identity_full = true
[stream.target]
kinesis_stream = %q
kinesis_stream_arn = %q
role_arn = %q
external_id = "localstack-external-id"
`, filepath.Join(t.TempDir(), "state"), listen, endpoint, endpoint, endpoint, role, clusterID, u.String(), keyARN,
		streamID, "cdcd_"+db.Config().Database, name, streamARN, role)
	cfgPath := filepath.Join(t.TempDir(), "cdcd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "CDCD_LS_PG_PASSWORD="+password)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("cdcd log:\n%s", logs.String())
		}
	}()

	// The stream reports the target's encryption once ACTIVE.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		view, err := getStream(listen, clusterID, streamID)
		if err == nil && view.Status == "ACTIVE" && view.Target.EncryptionType == "KMS" && view.Target.KeyID != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream not ACTIVE with KMS target encryption: %+v %v", view, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for i := 1; i <= 20; i++ {
		if _, err := db.Exec(ctx, `INSERT INTO items VALUES ($1, 'x')`, i); err != nil {
			t.Fatal(err)
		}
	}
	got := readAll(ctx, t, kin, name, 20)
	if len(got) < 20 {
		t.Fatalf("read %d records from LocalStack, want 20", len(got))
	}
}

// streamView is the part of GetStream this test reads.
type streamView struct {
	Status string `json:"status"`
	Target struct {
		EncryptionType string `json:"encryptionType"`
		KeyID          string `json:"keyId"`
	} `json:"target"`
}

// getStream calls the daemon's GetStream.
func getStream(listen, cluster, stream string) (streamView, error) {
	var v streamView
	resp, err := http.Get("http://" + listen + "/stream/" + cluster + "/" + stream)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return v, err
	}
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("GetStream: %s: %s", resp.Status, b)
	}
	return v, json.Unmarshal(b, &v)
}

func readAll(ctx context.Context, t *testing.T, kin *kinesis.Client, name string, want int) []string {
	t.Helper()
	shards, err := kin.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatalf("ListShards: %v", err)
	}
	var got []string
	deadline := time.Now().Add(2 * time.Minute)
	iters := map[string]*string{}
	for _, s := range shards.Shards {
		it, err := kin.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: s.ShardId,
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatalf("GetShardIterator: %v", err)
		}
		iters[aws.ToString(s.ShardId)] = it.ShardIterator
	}
	for len(got) < want && time.Now().Before(deadline) {
		for id, it := range iters {
			if it == nil {
				continue
			}
			out, err := kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
			if err != nil {
				t.Fatalf("GetRecords: %v", err)
			}
			for _, r := range out.Records {
				if r.EncryptionType != types.EncryptionTypeKms {
					t.Errorf("record stored with encryption %q, want KMS", r.EncryptionType)
				}
				got = append(got, string(r.Data))
			}
			iters[id] = out.NextShardIterator
		}
		time.Sleep(300 * time.Millisecond)
	}
	return got
}
