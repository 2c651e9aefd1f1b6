// Package capture reads a PostgreSQL logical replication slot with the
// pgoutput plugin and hands each committed transaction to a Handler. It owns
// the replication connection: it answers keepalives, and it alone reports the
// flush position, which is what the Handler says is delivered and persisted,
// never what was merely received.
//
// The files follow the data: setup.go checks prerequisites and manages the
// publication and slot, snapshot.go reads existing rows once, session.go is
// one replication connection's receive loop, assemble.go turns pgoutput
// messages into transactions, health.go watches the slot, shutdown.go lets
// a server that is shutting down go, and metrics.go exports what it sees.
package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/retry"
)

// Config configures one stream's source.
type Config struct {
	// DSN is a PostgreSQL connection string (URL or key=value).
	DSN string
	// Configure, when set, completes every new connection's configuration
	// (user, password, TLS) right before it connects, so rotated secrets and
	// fresh IAM tokens are picked up on the next reconnect.
	Configure func(ctx context.Context, cfg *pgconn.Config) error
	// OnConnectError sees every failed connection attempt, so a credential
	// source can drop a cached secret the server refused.
	OnConnectError func(err error)
	// Slot is the logical replication slot: 1 to 63 characters of
	// [a-z0-9_], as PostgreSQL requires.
	Slot        string
	Publication string
	// ExternalPublication says the publication is managed outside cdcd
	// (own_publication = false): Prepare never creates, alters or drops
	// it, and refuses to start unless it publishes what the stream needs.
	// Otherwise cdcd owns it and makes it exactly the stream's.
	ExternalPublication bool
	// EmitTruncate says the stream emits truncates, so its publication
	// must publish them.
	EmitTruncate bool
	// Tables are schema-qualified names of the published tables.
	Tables []string
	// EveryTable says Tables are every table of the database, listed anew
	// at each start (a stream made through the API): a table dropped or
	// renamed while it runs is then no fault, and the next start follows
	// it (docs/records.md#schema-changes).
	EveryTable bool
	// SetReplicaIdentityFull lets Prepare run ALTER TABLE … REPLICA
	// IDENTITY FULL on tables whose replica identity does not log what
	// records need: values that may be TOASTed, or the primary key.
	SetReplicaIdentityFull bool
	// KeylessTables opts in to tables without a primary key
	// (keyless_tables = "full"): they stream under REPLICA IDENTITY FULL,
	// every change its own record with the whole old row in before.
	// Otherwise Prepare refuses them.
	KeylessTables bool
	// StatusInterval is how often the flush position is reported even when
	// the server asks for nothing; it must be well under the server's
	// wal_sender_timeout (default 60 s). Default 10 s.
	StatusInterval time.Duration
	// HealthInterval is how often the slot's health is read from
	// pg_replication_slots. Default 10 s.
	HealthInterval time.Duration
	// Snapshot opts the stream in to an initial snapshot: when the slot is
	// created, the rows the tables already hold are read at the slot's
	// consistent point (a retry reads them later, on the same slot) and
	// handed to a SnapshotHandler before streaming starts.
	Snapshot bool
	// SnapshotBatchRows is how many rows one snapshot batch holds.
	// Default 5000.
	SnapshotBatchRows int
	// DisableStreaming keeps pgoutput at protocol version 1, so large
	// transactions reach cdcd only once committed. By default PostgreSQL
	// 14 and later stream them while in progress (protocol version 2),
	// which spares the server from spilling them to its own disk.
	DisableStreaming bool
	// MemoryBudget is about how many bytes the changes of transactions not
	// yet committed may take in memory; past it, a transaction's changes
	// go to an encrypted spill file and it is handed over with
	// record.Txn.Spilled (bounded memory). Default 64 MiB; negative never spills.
	MemoryBudget int
	// Spill stores the changes of transactions past MemoryBudget; the
	// caller builds it (atrest.NewSpillStore) so one directory and one
	// keyring serve capture and the encoder's sorted runs. Nil with a
	// positive budget is an error.
	Spill record.RunStore
	// Report receives SOURCE_UNAVAILABLE or SOURCE_PREREQUISITE_UNMET
	// when Prepare fails or a session cannot be established, or keeps
	// failing for ImpairAfter (trouble.go), and ("", nil) once the source
	// works again; also when the first session streams, since the stream
	// may carry a SOURCE_ code from before a restart that only capture can
	// clear. ErrSlotLost is the caller's to report.
	Report func(code codes.Code, err error)
	// ImpairAfter is how long sessions may keep failing once established
	// before they are reported. Default 30 s.
	ImpairAfter time.Duration
	// Reconnect is the schedule of reconnects; zero means
	// retry.Reconnect().
	Reconnect retry.Schedule
	// Metrics receives the source's metrics (Metrics.Stream); nil keeps
	// them unregistered.
	Metrics *StreamMetrics
	Logger  *slog.Logger
}

// Handler takes committed transactions and tells capture what may be
// confirmed to PostgreSQL.
type Handler interface {
	// Handle takes one committed transaction in commit order. It may block
	// for backpressure; capture keeps reporting status meanwhile. It must
	// return once ctx ends: a reconnect waits for it. A transaction may be
	// handed again after a reconnect.
	Handle(ctx context.Context, txn *record.Txn) error
	// Delivered is the end LSN up to which everything handed is accepted by
	// the target.
	Delivered() uint64
	// Persist durably records lsn as the stream's checkpoint; capture calls
	// it before confirming lsn to PostgreSQL.
	Persist(ctx context.Context, lsn uint64) error
	// Persisted is the last position Persist recorded (0 if none).
	Persisted() uint64
}

// SnapshotHandler is the Handler of a stream with Config.Snapshot.
//
// The snapshot protocol: capture creates the slot, hands every existing row
// through HandleSnapshot, calls SnapshotDone, and only then calls
// Persist(consistent point) and starts streaming from there. A nonzero
// Persisted() is therefore the durable mark that the snapshot finished: when
// a stream with Config.Snapshot starts with Persisted() == 0, a snapshot was
// interrupted (or never ran), so capture reads everything again on the slot
// the interrupted attempt left, and streams from its consistent point
// (docs/records.md#snapshot-retries). For that mark to hold, the handler
// must not persist a nonzero position of its own before SnapshotDone
// returns: snapshot batches carry EndLSN 0, so a handler that submits them
// at their EndLSN to a position tracker never confirms them.
type SnapshotHandler interface {
	Handler
	// HandleSnapshot takes one batch of rows read by the initial snapshot,
	// as a transaction whose changes are all record.Read with New holding
	// the whole row (text format, as pgoutput sends it). Xid is 0 and
	// EndLSN is 0: a batch is not a position to confirm. Every batch of
	// one attempt has the same CommitLSN and CommitTime. On the first
	// attempt they are the slot's consistent point and the server's clock
	// just before the slot was created, so every streamed transaction
	// commits after them; on a retry, the WAL position and the clock when
	// its read began, which differ from every earlier attempt's while
	// streamed transactions replayed from the consistent point may commit
	// before them. The handler must therefore order each batch after the
	// batches handed before it, and every streamed transaction after the
	// last batch (record.SourceTsNs does, given the previous value), also
	// across a restart: the checkpoint Persist writes when the snapshot
	// is done must carry the last batch's order. After a crash, the
	// retry's later clock orders its batches after the earlier attempt's.
	// It may block for backpressure.
	HandleSnapshot(ctx context.Context, batch *record.Txn) error
	// SnapshotDone is called once after the last batch. It returns when
	// every batch handed is delivered to the target (or ctx ends).
	SnapshotDone(ctx context.Context) error
	// MarkSnapshotStarted durably records that the snapshot created the
	// slot; capture calls it before handing the first batch over.
	// SnapshotStarted reports whether any run recorded it. With nothing
	// persisted, a slot missing at start was dropped while the snapshot
	// was unfinished: a new slot could not replay the deletes of rows
	// already handed over, so the stream fails instead.
	MarkSnapshotStarted(ctx context.Context) error
	SnapshotStarted() bool
}

// Source streams one slot.
type Source struct {
	cfg   Config
	log   *slog.Logger
	met   *StreamMetrics
	types *typeCache
	spill record.RunStore // nil: never spill

	// trouble is the run of failures behind capture's reports
	// (trouble.go).
	trouble trouble
	// slotReady is set once a session has found or created the slot, so
	// the health check treats a missing slot as lost from then on, and not
	// while an initial snapshot creates it.
	slotReady atomic.Bool
	// snapshotSlot is set once an initial snapshot has created or found
	// the slot (Run's goroutine only), so that a later attempt never
	// replaces it (snapshot.go).
	snapshotSlot bool

	mu     sync.Mutex
	health SlotHealth
	// tables are the stream's tables as the last Prepare found them
	// (tablecheck.go).
	tables []table
	// refusedAt is set when the stream refuses a change
	// (TableChangedError): the end of the transactions before it, until
	// a transaction past it is handed over. Only the session's goroutine
	// uses it.
	refusedAt uint64
	// endSession ends the running session early (shutdown.go); nil when
	// none runs.
	endSession context.CancelCauseFunc
}

// slotName is what PostgreSQL accepts as a replication slot name. Replication
// commands take the name unquoted, so nothing else may reach them.
var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// New returns a Source; it does not connect.
func New(cfg Config) (*Source, error) {
	if cfg.DSN == "" || cfg.Slot == "" || cfg.Publication == "" {
		return nil, errors.New("capture: DSN, slot and publication are required")
	}
	if !slotName.MatchString(cfg.Slot) {
		return nil, fmt.Errorf("capture: slot %q: want 1 to 63 characters of [a-z0-9_]", cfg.Slot)
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = 10 * time.Second
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 10 * time.Second
	}
	if cfg.Reconnect.Initial <= 0 {
		cfg.Reconnect = retry.Reconnect()
	}
	if cfg.ImpairAfter <= 0 {
		cfg.ImpairAfter = DefaultImpairAfter
	}
	if cfg.SnapshotBatchRows <= 0 {
		cfg.SnapshotBatchRows = 5000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Report == nil {
		cfg.Report = func(codes.Code, error) {}
	}
	if cfg.Metrics == nil {
		cfg.Metrics = unregistered()
	}
	src := &Source{cfg: cfg, log: cfg.Logger, met: cfg.Metrics, types: newTypeCache()}
	if cfg.MemoryBudget == 0 {
		src.cfg.MemoryBudget = DefaultMemoryBudget
	}
	if src.cfg.MemoryBudget > 0 {
		if cfg.Spill == nil {
			return nil, errors.New("capture: a memory budget needs a spill store")
		}
		src.spill = cfg.Spill
	}
	return src, nil
}

// DefaultMemoryBudget is Config.MemoryBudget's default.
const DefaultMemoryBudget = 64 << 20

// Types resolves the enums, domains, arrays and extension types that the
// published tables use, from pg_type; pass it to record.Config.Types. It is
// filled as Relation and Type messages arrive, always before the first
// transaction that needs an entry is handed over, and is safe for
// concurrent use.
func (s *Source) Types() record.Types { return s.types }

// Run streams until ctx ends or the slot is lost, reconnecting with
// exponential backoff after any other failure. Every reconnect resumes from
// the handler's persisted position, so nothing undelivered is skipped. A
// slot that is dropped or loses its WAL (wal_status = lost) ends Run with an
// error wrapping ErrSlotLost.
func (s *Source) Run(ctx context.Context, h Handler) error {
	if s.cfg.Snapshot {
		if _, ok := h.(SnapshotHandler); !ok {
			return fmt.Errorf("capture: the stream asks for an initial snapshot but its handler %T does not implement SnapshotHandler", h)
		}
	}
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.watchSlot(ctx, cancel)
	}()
	defer func() {
		cancel(nil)
		wg.Wait()
	}()

	bo := s.cfg.Reconnect.BackOff()
	err := retry.DoWith(ctx, bo, func() error {
		// A session always ends with an error, so only the slot's loss
		// or the end of ctx ends the retries.
		got, err := s.stream(ctx, h)
		if ctx.Err() != nil || errors.Is(err, ErrSlotLost) {
			return retry.Permanent(err)
		}
		if s.refused(err) {
			// The next session meets the same change.
			got = min(got, sessionStreamed)
		}
		if got == sessionWorked {
			// The source was back: a new outage starts from the
			// shortest wait. A session that fails as soon as it
			// streams (say, on a change it cannot get) backs off.
			bo.Reset()
		}
		s.failed(err, got != sessionRefused)
		return err
	}, func(err error, wait time.Duration) {
		s.met.reconnects.Inc()
		s.stillFailing(err, wait)
		if errors.Is(err, errSourceShutdown) {
			return // the session logged it, and it is no fault
		}
		// A source that stays down logs its first failures and then every
		// tenth; "replication started" marks the recovery.
		if n := s.trouble.failures; n <= 3 || n%10 == 0 {
			s.log.Warn("replication interrupted; reconnecting", "err", err, "retry_in", wait, "failures", n)
		}
	})
	if cause := context.Cause(ctx); errors.Is(cause, ErrSlotLost) {
		return cause
	}
	if parent.Err() != nil {
		return parent.Err()
	}
	return err
}

var errConnLost = errors.New("replication connection lost")
