package main

import (
	"context"
	"fmt"
	"os"

	"github.com/cdcd-dev/cdcd/test/kinesisfake"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// bigTxnResult is the large-transaction phase.
type bigTxnResult struct {
	DataBytes   int64   `json:"data_bytes"` // ids and payloads
	Rows        int64   `json:"rows"`
	Updated     int64   `json:"updated_rows"` // rows the transaction updates after inserting them
	RowPayload  int64   `json:"row_payload_bytes"`
	WALBytes    int64   `json:"wal_bytes"`
	InsertSecs  float64 `json:"insert_seconds"`
	Budget      int64   `json:"memory_budget"` // 0: cdcd's default
	Queue       int64   `json:"queue_bytes"`   // likewise
	RecvLogical recvRun `json:"pg_recvlogical"`
	Cdcd        cdcdRun `json:"cdcd"`
	Ratio       float64 `json:"ratio"` // cdcd's rows/s over pg_recvlogical's
}

func (r bigTxnResult) recvRate() float64 { return float64(r.Rows) / r.RecvLogical.Seconds }
func (r bigTxnResult) cdcdRate() float64 { return float64(r.Rows) / r.Cdcd.Seconds }

// bigTxns measures a large transaction of each -big size in turn.
func (b *bench) bigTxns(ctx context.Context, rep *report) error {
	for _, size := range b.o.bigSizes {
		if err := b.bigTxn(ctx, rep, size); err != nil {
			return fmt.Errorf("%s: %w", human(size), err)
		}
	}
	return nil
}

// bigTxn writes one INSERT … SELECT of size bytes of rows between two
// fresh slots, then drains it with pg_recvlogical, under protocol 2 with
// streaming as cdcd reads, and with cdcd, which spills it past its memory
// budget. Every row must arrive; duplicates are counted.
func (b *bench) bigTxn(ctx context.Context, rep *report, size int64) error {
	res := &bigTxnResult{RowPayload: b.o.bigRow, Budget: b.o.budget, Queue: b.o.queue}
	res.Rows = max(size/(8+b.o.bigRow), 1)
	res.DataBytes = res.Rows * (8 + b.o.bigRow)
	res.Updated = int64(b.o.bigUpdates * float64(res.Rows))
	// A name per size: each size's publication, slots, profiles and work
	// directory apart.
	spec := streamSpec{name: fmt.Sprintf("bigtxn_%dmb", size/1_000_000), tables: []string{"big"}}
	recvSlot := "recv_" + spec.name
	defer b.dropAll(context.WithoutCancel(ctx), []string{spec.slot(), recvSlot}, spec.tables)
	if _, err := b.db.Exec(ctx, "CREATE TABLE big (id bigint PRIMARY KEY, payload text); ALTER TABLE big REPLICA IDENTITY FULL"); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "e2e: inserting %d rows of %d payload bytes (%s) in one transaction\n", res.Rows, b.o.bigRow, human(res.DataBytes))
	sql := fmt.Sprintf("INSERT INTO big SELECT g, %s FROM generate_series(1, %d) g", payload("g", int(b.o.bigRow)), res.Rows)
	if res.Updated > 0 {
		// One statement string is one transaction. Updates make cdcd
		// compact the transaction through sorted runs; INSERTs alone take
		// its one-pass path.
		sql += fmt.Sprintf("; UPDATE big SET payload = upper(payload) WHERE id <= %d", res.Updated)
	}
	bl, err := b.writeBacklog(ctx, spec, recvSlot, func() error {
		_, err := b.db.Exec(ctx, sql)
		return err
	})
	if err != nil {
		return err
	}
	res.WALBytes, res.InsertSecs = bl.walBytes, bl.seconds
	if res.RecvLogical, err = b.recvlogical(ctx, recvSlot, spec.publication(), bl.end, true); err != nil {
		return err
	}
	rc := newRowCheck(res.Rows)
	spec.fake = kinesisfake.Start(kinesisfake.Options{Stream: spec.name, Shards: b.o.shards, OnRaw: rc.onRaw})
	defer spec.fake.Close()
	if res.Cdcd, err = b.drainCdcd(ctx, spec, spec.name, res.Rows); err != nil {
		return err
	}
	res.Ratio = res.cdcdRate() / res.recvRate()
	rep.BigTxns = append(rep.BigTxns, *res)
	if missing, _, bad := rc.missing(); missing != 0 || bad != 0 {
		return fmt.Errorf("records wrong: %d rows missing, %d records not rows", missing, bad)
	}
	if b.o.expectSpill && res.Cdcd.Spilled < 1 {
		return fmt.Errorf("the transaction did not spill (cdcd_capture_spilled_transactions_total %v)", res.Cdcd.Spilled)
	}
	return nil
}

// spilled is cdcd_capture_spilled_transactions_total, or -1 when cdcd's
// /metrics does not answer.
func spilled(listen string) float64 {
	m, err := testenv.Metrics(listen)
	if err != nil {
		return -1
	}
	var n float64
	for _, v := range testenv.Samples(m, "cdcd_capture_spilled_transactions_total") {
		n += v
	}
	return n
}
