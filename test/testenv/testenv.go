// Package testenv connects end-to-end tests to the servers that
// test/infra/up.sh starts (PostgreSQL, kinesalite, local-kms) and gives each
// test its own database, Kinesis stream and KMS key, removed when it ends.
//
// up.sh writes the servers' addresses to .cache/env; `make test` sources it.
// Without those variables Require skips the test, except under CI (CI set),
// where a skipped end-to-end test would hide a broken pipeline, so it fails.
//
// Parallel tests: make test runs one package at a time (-p 1) and up to 4
// tests of a package at once (-parallel 4). A test whose database, slot,
// Kinesis stream, KMS key, role, stand-ins, state directory and daemon are
// its own (the names here are unique to the test) starts with t.Parallel().
// A test stays serial when it stops or restarts the shared PostgreSQL
// (StopPG), changes a server-wide setting (ALTER SYSTEM), uses t.Setenv, or
// checks timing that CPU contention could break (a private server with a
// 1 s wal_sender_timeout, say). go test runs a package's serial tests
// first and its parallel ones only after they all end, so the two never
// overlap. Wait for conditions rather than sleeping, with timeouts that
// guard against hanging on a loaded 2-core machine.
package testenv

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Variables written by test/infra/up.sh.
const (
	VarPGDSN           = "CDCD_TEST_PG_DSN"
	VarPGPort          = "CDCD_TEST_PG_PORT"
	VarPGBin           = "CDCD_TEST_PG_BIN"
	VarPGData          = "CDCD_TEST_PG_DATA"
	VarPGSocket        = "CDCD_TEST_PG_SOCKET"
	VarKinesisEndpoint = "CDCD_TEST_KINESIS_ENDPOINT"
	VarKMSEndpoint     = "CDCD_TEST_KMS_ENDPOINT"
)

// DefaultRegion is the region of the local servers when AWS_REGION is unset.
const DefaultRegion = "us-east-1"

// opTimeout bounds each setup and cleanup call to a local server.
const opTimeout = 30 * time.Second

// Env describes the local servers.
type Env struct {
	PGDSN           string // superuser with REPLICATION, password auth: postgres://cdcd:PASSWORD@127.0.0.1:PORT/cdcd?sslmode=disable
	PGPort          int
	PGBin           string // PostgreSQL's bin directory (pg_ctl, psql, pg_recvlogical)
	PGData          string // the cluster's data directory
	PGSocket        string // the cluster's Unix socket directory (trust auth), may be empty
	KinesisEndpoint string // http://127.0.0.1:PORT (kinesalite)
	KMSEndpoint     string // http://127.0.0.1:PORT (local-kms)
	Region          string
}

// Require returns the environment, or ends the test when the servers are not
// configured: t.Skip normally, t.Fatal when the CI variable is set.
func Require(t testing.TB) Env {
	t.Helper()
	env, missing := fromEnv()
	if len(missing) == 0 {
		return env
	}
	msg := fmt.Sprintf("testenv: %s not set: run `make test`, or `make infra-up` and `. .cache/env`, to start PostgreSQL, kinesalite and local-kms",
		strings.Join(missing, ", "))
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set, so this is an error, not a skip)")
	}
	t.Skip(msg)
	return Env{}
}

func fromEnv() (Env, []string) {
	var missing []string
	get := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			missing = append(missing, name)
		}
		return v
	}
	env := Env{
		PGDSN:           get(VarPGDSN),
		PGBin:           get(VarPGBin),
		PGData:          get(VarPGData),
		PGSocket:        os.Getenv(VarPGSocket),
		KinesisEndpoint: get(VarKinesisEndpoint),
		KMSEndpoint:     get(VarKMSEndpoint),
		Region:          os.Getenv("AWS_REGION"),
	}
	if port := get(VarPGPort); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil {
			missing = append(missing, VarPGPort+" (not a number: "+port+")")
		}
		env.PGPort = n
	}
	if env.Region == "" {
		env.Region = DefaultRegion
	}
	return env, missing
}

var seq atomic.Int64

// UniqueName derives a name from the test's name that no other test in any
// package running against the same servers uses: lowercase [a-z0-9_], at
// most maxLen bytes, ending in a process- and call-unique suffix.
func UniqueName(t testing.TB, maxLen int) string {
	t.Helper()
	suffix := fmt.Sprintf("_%d_%d", os.Getpid()%100000, seq.Add(1))
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	base := strings.Trim(b.String(), "_")
	if base == "" || base[0] >= '0' && base[0] <= '9' {
		base = "t_" + base
	}
	if keep := maxLen - len(suffix); len(base) > keep {
		base = base[:max(keep, 0)]
	}
	return base + suffix
}
