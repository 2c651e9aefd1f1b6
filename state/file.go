package state

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/ident"
)

// FileVersion is the version of the per-stream file format. Open refuses
// files from a newer version rather than guessing at their meaning.
//
// otherReasons was added without a new version: a file without it reads
// as before (one cause, the statusReason), and an older cdcd refuses a
// file with it as an unknown key, which is what a new version would make
// it do.
const FileVersion = 1

// File is everything cdcd keeps about one stream across restarts; it is
// the per-stream JSON file.
type File struct {
	Version      int        `json:"version"`
	Definition   Definition `json:"definition"`
	Status       Status     `json:"status"`
	StatusReason *Reason    `json:"statusReason,omitempty"`
	// OtherReasons are the causes outstanding besides StatusReason, which
	// is the most severe of them (docs/lifecycle.md#status-reason); kept
	// so that after a restart each is cleared by its own owner.
	OtherReasons []Reason   `json:"otherReasons,omitempty"`
	Checkpoint   Checkpoint `json:"checkpoint"`
}

// Definition is what a stream was created with. It never changes after
// creation; a different definition is a different stream.
type Definition struct {
	ClusterID    string            `json:"clusterIdentifier"`
	StreamID     string            `json:"streamIdentifier"`
	ARN          string            `json:"arn"`
	Format       string            `json:"format"`
	Ordering     string            `json:"ordering"`
	Tags         map[string]string `json:"tags,omitempty"`
	Target       Target            `json:"target"`
	CreationTime time.Time         `json:"creationTime"`
	// ClientToken is CreateStream's idempotency token, kept so that a
	// retried request returns this stream instead of creating another.
	ClientToken string `json:"clientToken,omitempty"`
	// ConfigFile names the configuration file that manages the stream; such
	// a stream is changed by editing the file, not through the API.
	ConfigFile string `json:"configFile,omitempty"`
}

// Target is the Kinesis data stream and the role cdcd assumes to write it.
type Target struct {
	StreamARN string `json:"streamArn"`
	RoleARN   string `json:"roleArn"`
}

// Reason is a statusReason (docs/lifecycle.md#codes). Code is the DSQL "error" field;
// Message is the human detail for GetStream and logs, which DSQL does not
// have and SDK clients ignore.
type Reason struct {
	Code      codes.Code `json:"error"`
	Message   string     `json:"message,omitempty"`
	UpdatedAt time.Time  `json:"updatedAt"`
}

// Codes lists the codes of the outstanding causes the record shows: the
// statusReason's first, then the other reasons'.
func (r File) Codes() []codes.Code {
	var out []codes.Code
	if r.StatusReason != nil {
		out = append(out, r.StatusReason.Code)
	}
	for _, o := range r.OtherReasons {
		out = append(out, o.Code)
	}
	return out
}

// Checkpoint is the resume position: the last commit LSN whose records
// Kinesis accepted, and that transaction's source.ts_ns. The daemon saves
// it before confirming the LSN to PostgreSQL, so after a crash the slot
// never lies ahead of the file. TsNs is kept because source.ts_ns must stay
// strictly increasing across a restart (docs/records.md#identity), which needs the last
// value handed out.
type Checkpoint struct {
	LSN  uint64 `json:"lsn"`
	TsNs int64  `json:"tsNs"`
	// SnapshotStarted records that the initial snapshot created the
	// stream's slot. With LSN still 0 the snapshot is unfinished, and a
	// slot missing then was dropped under it (docs/records.md#snapshot-retries).
	SnapshotStarted bool `json:"snapshotStarted,omitempty"`
}

// String formats the LSN as PostgreSQL does ("16/B374D848").
func (c Checkpoint) String() string { return FormatLSN(c.LSN) }

// FormatLSN formats an LSN as PostgreSQL does.
func FormatLSN(lsn uint64) string { return fmt.Sprintf("%X/%X", lsn>>32, uint32(lsn)) }

// validate checks what a file or a caller could get wrong in a way that
// would otherwise surface far away: a path-unsafe id, an unknown status, a
// reason on a status that must not have one.
func (r *File) validate() error {
	d := r.Definition
	if !ident.ValidID(d.StreamID) {
		return fmt.Errorf("stream identifier %q: want %d characters of [a-z0-9]", d.StreamID, ident.IDLen)
	}
	if !ident.ValidID(d.ClusterID) {
		return fmt.Errorf("cluster identifier %q: want %d characters of [a-z0-9]", d.ClusterID, ident.IDLen)
	}
	if !r.Status.Valid() {
		return fmt.Errorf("status %q: unknown", r.Status)
	}
	if r.Status.HasReason() != (r.StatusReason != nil) {
		return fmt.Errorf("status %s with statusReason %v: a reason goes with IMPAIRED and FAILED only", r.Status, r.StatusReason)
	}
	if err := r.validateOthers(); err != nil {
		return err
	}
	if r.Version > FileVersion {
		return fmt.Errorf("file version %d: this cdcd reads up to %d", r.Version, FileVersion)
	}
	return nil
}

// validateOthers checks that otherReasons go with a statusReason and that
// no code is outstanding twice.
func (r *File) validateOthers() error {
	if len(r.OtherReasons) == 0 {
		return nil
	}
	if r.StatusReason == nil {
		return errors.New("otherReasons without a statusReason")
	}
	seen := map[codes.Code]bool{r.StatusReason.Code: true}
	for _, o := range r.OtherReasons {
		if seen[o.Code] {
			return fmt.Errorf("otherReasons: %s is outstanding twice", o.Code)
		}
		seen[o.Code] = true
	}
	return nil
}

// clone copies r deeply enough that the copy shares nothing mutable.
func (r File) clone() File {
	if r.Definition.Tags != nil {
		tags := make(map[string]string, len(r.Definition.Tags))
		for k, v := range r.Definition.Tags {
			tags[k] = v
		}
		r.Definition.Tags = tags
	}
	if r.StatusReason != nil {
		reason := *r.StatusReason
		r.StatusReason = &reason
	}
	r.OtherReasons = slices.Clone(r.OtherReasons)
	return r
}
