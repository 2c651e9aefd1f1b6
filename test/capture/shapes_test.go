package capture_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/capture"
	"github.com/cdcd-dev/cdcd/record"
)

// encodeAll encodes the handled transactions as the pipeline would and
// decodes the records back, in order.
func (h *harness) encodeAll(ordering record.Ordering) []*record.Message {
	h.t.Helper()
	enc, err := record.NewEncoder(record.Config{SystemID: 1, Cluster: strings.Repeat("a", 26), Database: "db",
		Ordering: ordering, EmitTruncate: true, Types: h.src.Types()})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*record.Message
	var prev int64
	for _, txn := range h.rec.handled() {
		encoded, err := enc.Encode(txn, prev, time.Now())
		if err != nil {
			h.t.Fatalf("encode: %v", err)
		}
		prev = encoded.TsNs
		for _, r := range encoded.Records {
			m, err := record.Decode(r.Data)
			if err != nil {
				h.t.Fatalf("decode %s: %v", r.Data, err)
			}
			out = append(out, m)
		}
	}
	return out
}

// relreplident reads a table's replica identity setting.
func (h *harness) relreplident(table string) string {
	h.t.Helper()
	var ident string
	if err := h.db.QueryRow(h.ctx, `SELECT relreplident::text FROM pg_class WHERE oid = to_regclass($1)`, table).Scan(&ident); err != nil {
		h.t.Fatal(err)
	}
	return ident
}

// prepareErr runs Prepare with cfg and returns its error.
func (h *harness) prepareErr(cfg capture.Config) error {
	h.t.Helper()
	src, err := capture.New(withoutMetrics(cfg))
	if err != nil {
		h.t.Fatal(err)
	}
	_, err = src.Prepare(h.ctx, 0)
	return err
}

// TestReplicaIdentityWithoutThePrimaryKey: a table whose replica identity
// does not log its primary key (USING INDEX on another index, or NOTHING) is
// refused with the statement that fixes it, or set to REPLICA IDENTITY FULL
// when the stream allows it; then every delete carries its primary key, and
// several deletes in one transaction stay several records.
func TestReplicaIdentityWithoutThePrimaryKey(t *testing.T) {
	h := newHarness(t, "", "public.m")
	h.exec(`CREATE TABLE m (id int8 PRIMARY KEY, ext uuid NOT NULL UNIQUE, n int)`)
	for _, tc := range []struct{ alter, want string }{
		{`ALTER TABLE m REPLICA IDENTITY USING INDEX m_ext_key`, `table "public"."m" has REPLICA IDENTITY USING INDEX "m_ext_key", which does not hold its whole primary key`},
		{`ALTER TABLE m REPLICA IDENTITY NOTHING`, `table "public"."m" has REPLICA IDENTITY NOTHING`},
	} {
		h.exec(tc.alter)
		cfg := h.cfg
		cfg.SetReplicaIdentityFull = false
		err := h.prepareErr(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) ||
			!strings.Contains(err.Error(), `run ALTER TABLE "public"."m" REPLICA IDENTITY FULL, or set set_replica_identity_full = true`) {
			t.Fatalf("%s: Prepare: %v", tc.alter, err)
		}
	}
	h.exec(`ALTER TABLE m REPLICA IDENTITY USING INDEX m_ext_key`)
	h.start()
	if got := h.relreplident("public.m"); got != "f" {
		t.Fatalf("replica identity after Prepare with set_replica_identity_full: %q, want f", got)
	}
	h.walsender()
	h.exec(`INSERT INTO m SELECT g, gen_random_uuid(), g FROM generate_series(1, 3) g`)
	h.exec(`BEGIN; DELETE FROM m WHERE id = 1; DELETE FROM m WHERE id = 2; DELETE FROM m WHERE id = 3; COMMIT`)
	h.waitChanges(6)
	var deleted []string
	for _, m := range h.encodeAll(record.Row) {
		if m.Op == "d" {
			deleted = append(deleted, string(mustJSON(t, m.Before)))
		}
	}
	if strings.Join(deleted, " ") != `{"id":1} {"id":2} {"id":3}` {
		t.Fatalf("deletes' before images: %v, want each primary key", deleted)
	}
}

func mustJSON(t *testing.T, img record.RowImage) []byte {
	t.Helper()
	b, err := img.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
