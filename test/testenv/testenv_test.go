package testenv_test

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// fakeTB records how Require ended a test.
type fakeTB struct {
	testing.TB
	mu      sync.Mutex
	skipped string
	fatal   string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skip(args ...any) {
	f.mu.Lock()
	f.skipped = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) Fatal(args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestRequireMissing(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ci        string
		wantSkip  bool
		wantFatal bool
	}{
		{name: "local skips", ci: "", wantSkip: true},
		{name: "CI fails", ci: "true", wantFatal: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(testenv.VarPGDSN, "")
			t.Setenv("CI", tc.ci)
			f := &fakeTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				testenv.Require(f)
			}()
			<-done
			if got := f.skipped != ""; got != tc.wantSkip {
				t.Errorf("skipped = %q, want skip %v", f.skipped, tc.wantSkip)
			}
			if got := f.fatal != ""; got != tc.wantFatal {
				t.Errorf("fatal = %q, want fatal %v", f.fatal, tc.wantFatal)
			}
			msg := f.skipped + f.fatal
			for _, want := range []string{testenv.VarPGDSN, "make test", ".cache/env"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not mention %q", msg, want)
				}
			}
		})
	}
}

func TestUniqueName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	for _, maxLen := range []int{20, 63, 128} {
		a, b := testenv.UniqueName(t, maxLen), testenv.UniqueName(t, maxLen)
		if a == b {
			t.Errorf("two calls gave the same name %q", a)
		}
		if len(a) > maxLen || !valid.MatchString(a) {
			t.Errorf("UniqueName(%d) = %q: want at most %d bytes of [a-z0-9_]", maxLen, a, maxLen)
		}
	}
	t.Run("Weird/Name with spaces & ÜNICODE", func(t *testing.T) {
		got := testenv.UniqueName(t, 63)
		if !strings.HasPrefix(got, "testuniquename_weird_name_with_spaces") || !valid.MatchString(got) {
			t.Errorf("UniqueName = %q", got)
		}
	})
}

func TestDatabase(t *testing.T) {
	env := testenv.Require(t)
	ctx := context.Background()

	var dbName string
	t.Run("fresh database with a slot", func(t *testing.T) {
		conn := testenv.NewDB(t, env)
		dbName = conn.Config().Database
		if dbName == "cdcd" || dbName == "" {
			t.Fatalf("NewDB connected to %q, want a fresh database", dbName)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY)"); err != nil {
			t.Fatal(err)
		}
		// A slot held open by a replication session: cleanup must end the
		// session and drop the slot before it can drop the database.
		repl, err := pgx.Connect(ctx, env.DSN(dbName)+"&replication=database")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { repl.Close(context.Background()) })
		if err := repl.PgConn().Exec(ctx, "CREATE_REPLICATION_SLOT s LOGICAL pgoutput").Close(); err != nil {
			t.Fatal(err)
		}
	})

	admin, err := pgx.Connect(ctx, env.PGDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var dbs, slots int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", dbName).Scan(&dbs); err != nil {
		t.Fatal(err)
	}
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE database = $1", dbName).Scan(&slots); err != nil {
		t.Fatal(err)
	}
	if dbs != 0 || slots != 0 {
		t.Errorf("after cleanup: %d databases, %d slots named %s; want none", dbs, slots, dbName)
	}
}

func TestPasswordAuth(t *testing.T) {
	env := testenv.Require(t)
	u, err := url.Parse(env.PGDSN)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "wrong")
	bad := u.String()
	conn, err := pgx.Connect(context.Background(), bad)
	if err == nil {
		conn.Close(context.Background())
		t.Fatal("connected with a wrong password; want password authentication")
	}
}

func TestKinesisStream(t *testing.T) {
	env := testenv.Require(t)
	ctx := context.Background()
	client := testenv.KinesisClient(t, env, "")
	name := testenv.StreamName(t)
	arn := testenv.CreateStream(t, client, name, 2)
	if !strings.HasSuffix(arn, ":stream/"+name) {
		t.Errorf("ARN %q does not name stream %s", arn, name)
	}

	if _, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{
		StreamName: aws.String(name),
		Records:    []kinesistypes.PutRecordsRequestEntry{{Data: []byte("hello"), PartitionKey: aws.String("k")}},
	}); err != nil {
		t.Fatal(err)
	}
	shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if len(shards.Shards) != 2 {
		t.Fatalf("%d shards, want 2", len(shards.Shards))
	}
	var got []string
	for _, sh := range shards.Shards {
		it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(name), ShardId: sh.ShardId, ShardIteratorType: kinesistypes.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs.Records {
			got = append(got, string(r.Data))
		}
	}
	if len(got) != 1 || got[0] != "hello" {
		t.Errorf("read %q, want [hello]", got)
	}
}

func TestKMSKey(t *testing.T) {
	env := testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := testenv.KMSClient(t, env, "")
	key := testenv.CreateKey(t, client)
	encCtx := map[string]string{"aws:kinesis:arn": "arn:aws:kinesis:us-east-1:000000000000:stream/s"}
	dk, err := client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId: aws.String(key), NumberOfBytes: aws.Int32(32), EncryptionContext: encCtx,
	})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: encCtx})
	if err != nil {
		t.Fatal(err)
	}
	if string(plain.Plaintext) != string(dk.Plaintext) {
		t.Error("Decrypt did not return the data key")
	}
}
