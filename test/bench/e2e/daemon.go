package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cdcd-dev/cdcd/test/kinesisfake"
)

// streamSpec is the one stream of a cdcd run: its name is also its
// Kinesis stream's, and its slot and publication are cdcd_<name>.
type streamSpec struct {
	name   string
	tables []string
	fake   *kinesisfake.Server
}

func (s streamSpec) slot() string        { return "cdcd_" + s.name }
func (s streamSpec) publication() string { return "cdcd_" + s.name }

// daemon is a running `cdcd run`.
type daemon struct {
	cmd     *exec.Cmd
	started time.Time // just before the exec
	listen  string
	log     string
	done    chan struct{} // closed at exit
	err     error         // the exit status, once done
	stopped bool
	stopErr error
}

// config writes the run's configuration: cdcd's defaults but for the
// endpoints and, when given, -budget, -queue and -delivery. The password goes to the
// environment, never to the file.
func (b *bench) config(dir string, s streamSpec, listen string) (string, error) {
	quoted := make([]string, len(s.tables))
	for i, t := range s.tables {
		quoted[i] = fmt.Sprintf("%q", "public."+t)
	}
	var delivery strings.Builder
	if b.o.budget > 0 {
		fmt.Fprintf(&delivery, "memory_budget = %d\n", b.o.budget)
	}
	if b.o.queue > 0 {
		fmt.Fprintf(&delivery, "queue_bytes = %d\n", b.o.queue)
	}
	for _, line := range b.o.delivery {
		delivery.WriteString(line + "\n")
	}
	text := fmt.Sprintf(`state_dir = %q
listen = %q
[aws]
region = "us-east-1"
# The stand-ins' account; without it cdcd would ask STS.
account = "000000000000"
kinesis_endpoint = %q
[[cluster]]
name = "src"
dsn = %q
password_env = "CDCD_BENCH_PG_PASSWORD"
[[stream]]
name = %q
cluster = "src"
tables = [%s]
[stream.target]
kinesis_stream = %q
[stream.delivery]
%s`, filepath.Join(dir, "state"), listen, s.fake.URL(), b.dsn, s.name, strings.Join(quoted, ", "), s.name, delivery.String())
	path := filepath.Join(dir, "cdcd.toml")
	return path, os.WriteFile(path, []byte(text), 0o600)
}

// startCdcd runs cdcd for s in a directory of its own under the work
// directory, with profiles when -profile asks.
func (b *bench) startCdcd(s streamSpec, label string) (*daemon, error) {
	dir := filepath.Join(b.work, label)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	config, err := b.config(dir, s, listen)
	if err != nil {
		return nil, err
	}
	d := &daemon{listen: listen, log: filepath.Join(dir, "cdcd.log"), done: make(chan struct{})}
	logf, err := os.Create(d.log)
	if err != nil {
		return nil, err
	}
	args := []string{"run", "--config", config}
	if b.o.profile != "" {
		args = append(args, "--cpuprofile", filepath.Join(b.o.profile, label+".cpu.pprof"),
			"--memprofile", filepath.Join(b.o.profile, label+".heap.pprof"))
	}
	d.cmd = exec.Command(b.o.bin, args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.Env = append(os.Environ(), "CDCD_BENCH_PG_PASSWORD="+b.password, "AWS_ACCESS_KEY_ID=bench",
		"AWS_SECRET_ACCESS_KEY=bench", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true")
	d.started = time.Now()
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() {
		d.err = d.cmd.Wait()
		logf.Close()
		close(d.done)
	}()
	return d, nil
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// stop ends cdcd with SIGTERM, as an operator would, and waits; a cdcd
// that has already exited, or does not stop within 30 s, is an error.
// Calls after the first return the first's answer.
func (d *daemon) stop() error {
	if !d.stopped {
		d.stopped, d.stopErr = true, d.terminate()
	}
	return d.stopErr
}

func (d *daemon) terminate() error {
	select {
	case <-d.done:
		return fmt.Errorf("cdcd exited early (%v); %s", d.err, d.logTail())
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("cdcd did not stop within 30s of SIGTERM; see %s", d.log)
	}
	if d.err != nil {
		return fmt.Errorf("cdcd: %v; %s", d.err, d.logTail())
	}
	return nil
}

// cdcdRun is what one drain by cdcd measured.
type cdcdRun struct {
	Seconds      float64 `json:"seconds"`       // from the exec to the last record accepted
	FirstSeconds float64 `json:"first_seconds"` // to the first
	Records      int64   `json:"records"`
	Duplicates   int64   `json:"duplicates"` // records beyond the changes: resent after a failed call
	RecordBytes  int64   `json:"record_bytes"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	PeakRSS      int64   `json:"peak_rss"`
	Spilled      float64 `json:"spilled_transactions"`
}

// quiet is how long no record may arrive before a drain counts as done.
const quiet = 300 * time.Millisecond

// drainCdcd starts cdcd on s and waits until its fake has accepted want
// records and then no more for a while: a call that failed on the way back
// is sent again (delivery is at least once), so want may be reached with
// duplicates while the last records are still on their way. It reads
// cdcd's CPU time and peak RSS then, before stopping it.
func (b *bench) drainCdcd(ctx context.Context, s streamSpec, label string, want int64) (cdcdRun, error) {
	d, err := b.startCdcd(s, label)
	if err != nil {
		return cdcdRun{}, err
	}
	defer d.stop()
	if err := waitRecords(ctx, s.fake, want, b.o.timeout, d); err != nil {
		return cdcdRun{}, err
	}
	u, err := readUsage(d.pid())
	if err != nil {
		return cdcdRun{}, err
	}
	run := cdcdRun{
		Seconds:      s.fake.Last().Sub(d.started).Seconds(),
		FirstSeconds: s.fake.First().Sub(d.started).Seconds(),
		CPUSeconds:   u.cpu.Seconds(),
		PeakRSS:      u.hwm,
		Spilled:      spilled(d.listen),
	}
	if err := d.stop(); err != nil {
		return cdcdRun{}, err
	}
	// Counted after the stop: a record beyond want is a duplicate.
	run.Records, run.RecordBytes = s.fake.Records(), s.fake.Bytes()
	run.Duplicates = run.Records - want
	return run, nil
}

// waitRecords waits until fake has accepted want records and then none
// for quiet, or limit passes or cdcd exits.
func waitRecords(ctx context.Context, fake *kinesisfake.Server, want int64, limit time.Duration, d *daemon) error {
	seen, since := int64(-1), time.Now()
	err := poll(ctx, limit, 20*time.Millisecond, fmt.Sprintf("%d records", want), d.done, func() (bool, error) {
		if n := fake.Records(); n != seen {
			seen, since = n, time.Now()
		}
		return seen >= want && time.Since(since) >= quiet, nil
	})
	if err != nil {
		return fmt.Errorf("%w: %d of %d records; %s", err, fake.Records(), want, d.logTail())
	}
	return nil
}

// waitStreaming waits until cdcd reads from its slot.
func (b *bench) waitStreaming(ctx context.Context, d *daemon, slot string) error {
	err := poll(ctx, time.Minute, 50*time.Millisecond, "cdcd to stream from its slot", d.done, func() (bool, error) {
		var active bool
		err := b.db.QueryRow(ctx, `SELECT coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active)
		return active, err
	})
	if err != nil {
		return fmt.Errorf("%w; %s", err, d.logTail())
	}
	return nil
}

// logTail names cdcd's log and quotes its last lines.
func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return fmt.Sprintf("the end of %s:\n%s", d.log, strings.Join(lines[max(len(lines)-5, 0):], "\n"))
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
