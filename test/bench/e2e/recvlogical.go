package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"
)

// recvRun is what one drain by pg_recvlogical measured.
type recvRun struct {
	Seconds    float64 `json:"seconds"` // from the exec to its exit at the end position
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakRSS    int64   `json:"peak_rss"`
}

// recvlogical drains slot up to endpos with pg_recvlogical into /dev/null,
// through publication pub: protocol 1, or with streaming 2 and streaming
// of large transactions in progress, as cdcd reads them.
func (b *bench) recvlogical(ctx context.Context, slot, pub string, endpos int64, streaming bool) (recvRun, error) {
	proto := []string{"-o", "proto_version=1"}
	if streaming {
		proto = []string{"-o", "proto_version=2", "-o", "streaming=on"}
	}
	args := append([]string{"-d", b.dsn, "--slot", slot, "--start", "--no-loop",
		"--endpos", pglogrepl.LSN(endpos).String(), "-f", "/dev/null", "-o", "publication_names=" + pub}, proto...)
	cmd := exec.CommandContext(ctx, filepath.Join(b.o.pgBin, "pg_recvlogical"), args...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+b.password)
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return recvRun{}, fmt.Errorf("pg_recvlogical (-pg-bin %q): %w", b.o.pgBin, err)
	}
	r := recvRun{Seconds: time.Since(start).Seconds()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.CPUSeconds = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		r.PeakRSS = ru.Maxrss << 10 // kB on Linux
	}
	return r, nil
}
