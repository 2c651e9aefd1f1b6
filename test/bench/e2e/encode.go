package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// encodeResult is one case of record/'s BenchmarkEncode10Columns, per
// record (a 10-column row).
type encodeResult struct {
	Case            string  `json:"case"`
	NsPerRecord     float64 `json:"ns_per_record"`
	AllocsPerRecord float64 `json:"allocs_per_record"`
}

const encodeBench = "BenchmarkEncode10Columns"

// encode runs the encoding micro-benchmark, which measures what the drain
// cannot separate: the cost of a record alone.
func (b *bench) encode(ctx context.Context, rep *report) error {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^"+encodeBench+"$", "-benchmem", "./record")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go test -bench %s ./record: %w\n%s", encodeBench, err, out)
	}
	rep.Encode, err = parseBench(string(out))
	return err
}

// parseBench reads the cases of encodeBench from go test's output,
// preferring the per-record metrics a case reports over its per-op ones.
func parseBench(out string) ([]encodeResult, error) {
	var res []encodeResult
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], encodeBench+"/") {
			continue
		}
		name := strings.TrimPrefix(f[0], encodeBench+"/")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i] // the GOMAXPROCS suffix
			}
		}
		metrics := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				metrics[f[i+1]] = v
			}
		}
		r := encodeResult{Case: name, NsPerRecord: metrics["ns/op"], AllocsPerRecord: metrics["allocs/op"]}
		if v, ok := metrics["ns/record"]; ok {
			r.NsPerRecord = v
		}
		if v, ok := metrics["allocs/record"]; ok {
			r.AllocsPerRecord = v
		}
		res = append(res, r)
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("no %s results in:\n%s", encodeBench, out)
	}
	return res, nil
}
