package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/cdcd-dev/cdcd/test/kinesisfake"
)

// drainResult is one drain: a backlog read by pg_recvlogical and by cdcd
// from slots made before it was written.
type drainResult struct {
	Workload       workload `json:"workload"`
	WALBytes       int64    `json:"wal_bytes"`
	GenerateSecs   float64  `json:"generate_seconds"`
	RecvLogical    recvRun  `json:"pg_recvlogical"`
	Cdcd           cdcdRun  `json:"cdcd"`
	Ratio          float64  `json:"ratio"` // cdcd's changes/s over pg_recvlogical's
	CPUPerChangeUs float64  `json:"cdcd_cpu_us_per_change"`
}

func (d drainResult) recvRate() float64 { return float64(d.Workload.Changes) / d.RecvLogical.Seconds }
func (d drainResult) cdcdRate() float64 { return float64(d.Workload.Changes) / d.Cdcd.Seconds }

func (b *bench) drains(ctx context.Context, rep *report) error {
	for _, n := range b.o.drains {
		w := b.o.shape
		w.Changes = n
		r, err := b.drain(ctx, w)
		if err != nil {
			return fmt.Errorf("%s changes: %w", count(n), err)
		}
		rep.Drains = append(rep.Drains, r)
	}
	return nil
}

// drain writes the workload's backlog between two fresh slots, then lets
// pg_recvlogical and cdcd read it, one after the other so that neither
// takes CPU from the other. Each time runs from its process's start.
func (b *bench) drain(ctx context.Context, w workload) (drainResult, error) {
	res := drainResult{Workload: w}
	// Slot and stream names are lower case.
	name := "drain_" + strings.ToLower(count(w.Changes))
	tables := make([]string, w.Tables)
	for i := range tables {
		tables[i] = fmt.Sprintf("%s_t%d", name, i+1)
	}
	spec := streamSpec{name: name, tables: tables}
	recvSlot := "recv_" + name
	defer b.dropAll(context.WithoutCancel(ctx), []string{spec.slot(), recvSlot}, tables)
	plans := w.plan()
	cur, err := createTables(ctx, b.db, tables, plans, w.RowBytes)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(os.Stderr, "e2e: writing %d changes (%s)\n", w.Changes, w.describe())
	bl, err := b.writeBacklog(ctx, spec, recvSlot, func() error { return generate(ctx, b.db, tables, plans, cur, w.RowBytes) })
	if err != nil {
		return res, err
	}
	res.WALBytes, res.GenerateSecs = bl.walBytes, bl.seconds
	if res.RecvLogical, err = b.recvlogical(ctx, recvSlot, spec.publication(), bl.end, false); err != nil {
		return res, err
	}
	spec.fake = kinesisfake.Start(kinesisfake.Options{Stream: name, Shards: b.o.shards})
	defer spec.fake.Close()
	if res.Cdcd, err = b.drainCdcd(ctx, spec, name, w.Changes); err != nil {
		return res, err
	}
	res.Ratio = res.cdcdRate() / res.recvRate()
	res.CPUPerChangeUs = res.Cdcd.CPUSeconds / float64(w.Changes) * 1e6
	return res, nil
}
