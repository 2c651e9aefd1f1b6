package soak

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/test/faultproxy"
	"github.com/cdcd-dev/cdcd/test/stsstub"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

const (
	// role is the role both streams write as, through the STS stand-in.
	role       = "arn:aws:iam::000000000000:role/cdcd-soak"
	externalID = "soak-external-id"
	// shards per Kinesis stream: several, so records spread and ROW
	// ordering has shards to keep apart.
	shards = 4
	// memoryBudget is the streams' memory_budget, the least allowed: the
	// workload's large transactions spill.
	memoryBudget = 1 << 20
)

// soak is one run: the source database, the AWS stand-ins, the daemon's
// config, and what runs against them.
type soak struct {
	t     *testing.T
	env   testenv.Env
	opt   options
	began time.Time // when the workload and the chaos started
	log   *eventLog

	dsn       string // the source database, with its password
	password  string
	cfgDSN    string // the same without the password, for the config
	clusterID string

	proxy *faultproxy.Proxy // in front of Kinesis
	front *kinesisFront     // in front of the proxy, counting calls
	sts   *stsstub.Server
	kms   *kms.Client
	key   string // the cluster key's ARN

	streams  []*stream
	stateDir string
	config   string
	listen   string
	spill    *spillFS // nil when no size-limited spill directory can be made here

	spillState spillState

	daemon       *daemons
	obs          *observer
	stopObserver func() // ends the observer and waits for it
	work         *workload
	plan         []*episode
}

// stream is one configured cdcd stream and its Kinesis stream.
type stream struct {
	name     string // cdcd's name for it
	id       string // its stream identifier
	kinesis  string
	slot     string
	ordering string
	tables   []string
	extra    string // more keys for its [[stream]] table
}

func newSoak(t *testing.T, env testenv.Env, opt options) *soak {
	s := &soak{t: t, env: env, opt: opt, log: newEventLog(t)}
	// Registered first, so it runs last: PostgreSQL runs again for the
	// packages after this one, whatever happened.
	testenv.RestorePG(t, env)
	s.setupSource()
	s.setupAWS()
	s.writeConfig()
	if s.spill = probeSpillFS(t); s.spill != nil {
		s.spill.root = filepath.Join(s.stateDir, "spill")
	}
	s.daemon = newDaemons(s)
	s.obs = newObserver(s)
	s.work = newWorkload(s)
	return s
}

// setupSource creates the database and its tables. Its cleanup first
// starts PostgreSQL again if a failed run left it stopped, so that the
// database can be dropped.
func (s *soak) setupSource() {
	t := s.t
	s.dsn = testenv.CreateDB(t, s.env)
	t.Cleanup(func() { s.ensurePG() })
	u, err := url.Parse(s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	s.password, _ = u.User.Password()
	u.User = url.User(u.User.Username())
	s.cfgDSN = u.String()
	name := strings.TrimPrefix(u.Path, "/")
	s.clusterID = identifier(name, "cluster")
	unique := strings.ReplaceAll(testenv.UniqueName(t, 40), "__", "_")
	s.streams = []*stream{
		{name: "rows", ordering: "ROW", tables: []string{"public.accounts", "public.docs"}},
		{name: "spread", ordering: "UNORDERED", tables: []string{"public.events", "public.scratch"}, extra: "emit_truncate = true"},
	}
	for _, st := range s.streams {
		st.id = identifier(name, st.name)
		st.slot = "cdcd_" + unique + "_" + st.name
		st.kinesis = testenv.StreamName(t) + "-" + st.name
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.withConn(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, schemaSQL)
		return err
	}); err != nil {
		t.Fatalf("create the tables: %v", err)
	}
}

// identifier derives a 26-character [a-z0-9] identifier for the config,
// fixed so that the daemon can start while PostgreSQL is down.
func identifier(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "/")))
	return hex.EncodeToString(sum[:])[:26]
}

// setupAWS starts the fault proxy in front of Kinesis (behind a front that
// counts calls), the Kinesis streams,
// the STS stand-in with the streams' role, and the cluster key.
func (s *soak) setupAWS() {
	t := s.t
	s.proxy = faultproxy.New(s.env.KinesisEndpoint)
	s.front = newKinesisFront(t, s.proxy)
	kin := testenv.KinesisClient(t, s.env, "")
	for _, st := range s.streams {
		testenv.CreateStream(t, kin, st.kinesis, shards)
	}
	s.sts = stsstub.New(t)
	s.sts.AddRoleWith(role, stsstub.Role{ExternalID: externalID, TrustAllowed: true, TagSession: true})
	s.sts.SetLifetime(credentialLifetime)
	s.kms = testenv.KMSClient(t, s.env, "")
	s.key = testenv.CreateKey(t, s.kms)
}

// writeConfig writes the daemon's config: one cluster with a cluster key,
// two streams writing as the role through the proxy.
func (s *soak) writeConfig() {
	t := s.t
	dir := t.TempDir()
	s.stateDir = filepath.Join(dir, "state")
	s.config = filepath.Join(dir, "cdcd.toml")
	s.listen = testenv.FreeAddr(t)
	if err := os.MkdirAll(filepath.Join(s.stateDir, "spill"), 0o700); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `state_dir = %q
listen = %q
[log]
level = "info"
[aws]
region = %q
kinesis_endpoint = %q
kms_endpoint = %q
sts_endpoint = %q
role_arn_allow = [%q]
[[cluster]]
name = "src"
identifier = %q
dsn = %q
password_env = "CDCD_SOAK_PG_PASSWORD"
cluster_key_arn = %q
cluster_key_check_interval = "1s"
`, s.stateDir, s.listen, s.env.Region, s.front.URL(), s.env.KMSEndpoint, s.sts.URL(), role,
		s.clusterID, s.cfgDSN, s.key)
	for _, st := range s.streams {
		fmt.Fprintf(&b, `[[stream]]
name = %q
identifier = %q
cluster = "src"
tables = ["%s"]
slot = %q
publication = %q
ordering = %q
set_replica_identity_full = true
%s
[stream.target]
kinesis_stream = %q
role_arn = %q
external_id = %q
[stream.delivery]
status_interval = "1s"
linger = "5ms"
memory_budget = %d
`, st.name, st.id, strings.Join(st.tables, `", "`), st.slot, st.slot, st.ordering, st.extra,
			st.kinesis, role, externalID, memoryBudget)
	}
	if err := os.WriteFile(s.config, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// withConn runs f on a new connection to the source database, trying to
// connect until ctx ends: PostgreSQL may be restarting.
func (s *soak) withConn(ctx context.Context, f func(*pgx.Conn) error) error {
	for {
		c, err := pgx.Connect(ctx, s.dsn)
		if err == nil {
			defer c.Close(context.WithoutCancel(ctx))
			return f(c)
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// ensurePG starts PostgreSQL if it is not running.
func (s *soak) ensurePG() {
	if testenv.RunPG(s.env.PGBin, "pg_ctl", "-D", s.env.PGData, "status") == nil {
		return
	}
	if err := s.env.StartPG(); err != nil {
		s.t.Errorf("start PostgreSQL again: %v", err)
	}
}

// since is the time elapsed in the run.
func (s *soak) since(t time.Time) time.Duration { return t.Sub(s.began) }
