package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/jackc/pgx/v5"
)

// machine is where and on what a run was made.
type machine struct {
	Cores      int               `json:"cores"`
	CPU        string            `json:"cpu"`
	Go         string            `json:"go"`
	PostgreSQL string            `json:"postgresql"`
	Settings   map[string]string `json:"postgresql_settings"`
	Commit     string            `json:"commit"`
	LoadBefore string            `json:"load_before"` // /proc/loadavg: the machine is shared
}

// pgSettings are the server settings that move the figures.
var pgSettings = []string{"fsync", "synchronous_commit", "full_page_writes", "wal_level", "logical_decoding_work_mem", "shared_buffers"}

func describeMachine(ctx context.Context, db *pgx.Conn) (machine, error) {
	m := machine{Cores: runtime.NumCPU(), CPU: cpuModel(), Go: runtime.Version(), Settings: map[string]string{}, LoadBefore: loadAverage()}
	if out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	if err := db.QueryRow(ctx, "SHOW server_version").Scan(&m.PostgreSQL); err != nil {
		return m, err
	}
	for _, s := range pgSettings {
		var v string
		if err := db.QueryRow(ctx, "SELECT current_setting($1)", s).Scan(&v); err != nil {
			return m, err
		}
		m.Settings[s] = v
	}
	return m, nil
}

// cpuModel is the first CPU's model name, family and model from
// /proc/cpuinfo: a virtual machine's name alone can be as vague as "AMD EPYC".
func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	first := map[string]string{}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if k = strings.TrimSpace(k); ok && first[k] == "" {
			first[k] = strings.TrimSpace(v)
		}
	}
	if first["model name"] == "" {
		return "unknown"
	}
	return fmt.Sprintf("%s (family %s, model %s)", first["model name"], first["cpu family"], first["model"])
}

// loadAverage is the 1, 5 and 15 minute load of /proc/loadavg.
func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
