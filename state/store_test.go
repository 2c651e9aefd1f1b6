package state

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/ident"
)

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func fullRecord() File {
	r := testRecord(Impaired)
	r.Version = FileVersion
	r.Definition.Tags = map[string]string{"team": "orders", "env": "prod"}
	r.Definition.ClientToken = "3f0b7d4e-token"
	r.Checkpoint = Checkpoint{LSN: 0x16_B374D848, TsNs: 1705318200000000000}
	return r
}

func TestStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	want := fullRecord()
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(testStream)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Load = %+v, %v\nwant %+v", got, err, want)
	}
	// Loaded records are copies: changing one must not reach the store.
	got.Definition.Tags["team"] = "x"
	got.StatusReason.Code = codes.InternalError
	if again, _ := s.Load(testStream); !reflect.DeepEqual(again, want) {
		t.Fatal("Load shares memory with the store")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openStore(t, dir)
	got, err = s2.Load(testStream)
	if err != nil {
		t.Fatal(err)
	}
	// time.Time loses its monotonic reading and location in JSON.
	if !got.Definition.CreationTime.Equal(want.Definition.CreationTime) ||
		!got.StatusReason.UpdatedAt.Equal(want.StatusReason.UpdatedAt) {
		t.Fatalf("times changed: %+v", got)
	}
	got.Definition.CreationTime, got.StatusReason.UpdatedAt = want.Definition.CreationTime, want.StatusReason.UpdatedAt
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen: %+v\nwant %+v", got, want)
	}
	if l := s2.List(); len(l) != 1 || l[0].Definition.StreamID != testStream {
		t.Fatalf("List = %+v", l)
	}
}

func TestStoreFileFormat(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	if err := s.Save(fullRecord()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "streams", testStream+".json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"version": 1`, `"clusterIdentifier": "` + testCluster, `"streamIdentifier": "` + testStream,
		`"status": "IMPAIRED"`, `"error": "KINESIS_ACCESS_DENIED"`, `"lsn": 97500059720`,
		`"tsNs": 1705318200000000000`, `"streamArn": "arn:aws:kinesis:`, `"clientToken": "3f0b7d4e-token"`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("file lacks %s:\n%s", want, b)
		}
	}
}

func TestStoreTornWriteIgnored(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	want := fullRecord()
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	// A crash after CreateTemp and before rename leaves a partial file;
	// one for a stream that was never saved leaves only the temp file.
	tmp1 := filepath.Join(dir, "streams", testStream+".json.tmp123")
	tmp2 := filepath.Join(dir, "streams", ident.NewStreamID()+".json.tmp456")
	for _, p := range []string{tmp1, tmp2} {
		if err := os.WriteFile(p, []byte(`{"version":1,"definition":{"clus`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s2 := openStore(t, dir)
	if l := s2.List(); len(l) != 1 {
		t.Fatalf("List = %d streams, want 1", len(l))
	}
	got, err := s2.Load(testStream)
	if err != nil || got.Checkpoint != want.Checkpoint || got.Status != Impaired {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	for _, p := range []string{tmp1, tmp2} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("leftover %s not removed: %v", p, err)
		}
	}
}

func TestStoreFailedSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	rec := testRecord(Active)
	if err := s.Save(rec); err != nil {
		t.Fatal(err)
	}
	st, err := NewStream(rec, Options{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Fault(codes.SourceSlotLost, errors.New("wal_status = lost")); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()

	s2 := openStore(t, dir)
	got, err := s2.Load(testStream)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != Failed || got.StatusReason == nil || got.StatusReason.Code != codes.SourceSlotLost {
		t.Fatalf("after reopen: %s %+v", got.Status, got.StatusReason)
	}
	st2, err := NewStream(got, Options{Store: s2})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []func() error{st2.Created, func() error { return st2.Recover(codes.OwnerSink) }} {
		if err := f(); !errors.Is(err, ErrInvalidTransition) {
			t.Errorf("reopened FAILED stream accepted an event: %v", err)
		}
	}
}

func TestStoreCheckpoint(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	rec := testRecord(Active)
	if err := s.Save(rec); err != nil {
		t.Fatal(err)
	}
	cp := Checkpoint{LSN: 500, TsNs: 1, SnapshotStarted: true}
	if err := s.SaveCheckpoint(testStream, cp); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCheckpoint(testStream, cp); err != nil {
		t.Fatalf("repeating a checkpoint: %v", err)
	}
	if err := s.SaveCheckpoint(testStream, Checkpoint{LSN: 499}); !errors.Is(err, ErrCheckpointRegress) {
		t.Fatalf("regress: %v", err)
	}
	// A status save from a copy taken before the checkpoint keeps it.
	rec.Status, rec.StatusReason = Impaired, &Reason{Code: codes.InternalError, UpdatedAt: time.Now()}
	if err := s.Save(rec); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load(testStream); got.Checkpoint != cp || got.Status != Impaired {
		t.Fatalf("after a stale Save: %+v", got)
	}
	if err := s.SaveCheckpoint(ident.NewStreamID(), cp); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown stream: %v", err)
	}
	_ = s.Close()
	if got, _ := openStore(t, dir).Load(testStream); got.Checkpoint != cp {
		t.Fatalf("after reopen: %+v", got.Checkpoint)
	}
}

func TestStoreDelete(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	if err := s.Save(testRecord(Deleting)); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(testStream); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(testStream); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load after Delete: %v", err)
	}
	if err := s.Delete(testStream); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
	if err := s.SaveCheckpoint(testStream, Checkpoint{LSN: 1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("checkpoint after Delete: %v", err)
	}
	_ = s.Close()
	if l := openStore(t, dir).List(); len(l) != 0 {
		t.Fatalf("deleted stream back after reopen: %+v", l)
	}
}

func TestStoreRejects(t *testing.T) {
	tests := []struct {
		name string
		rec  func() File
	}{
		{"path in stream id", func() File { r := testRecord(Active); r.Definition.StreamID = "../../../../../../etc/pass"; return r }},
		{"bad cluster id", func() File { r := testRecord(Active); r.Definition.ClusterID = "x"; return r }},
		{"unknown status", func() File { r := testRecord(Active); r.Status = "PAUSED"; return r }},
		{"reason on ACTIVE", func() File { r := testRecord(Active); r.StatusReason = &Reason{Code: codes.InternalError}; return r }},
		{"FAILED without reason", func() File { r := testRecord(Failed); r.StatusReason = nil; return r }},
		{"newer file version", func() File { r := testRecord(Active); r.Version = FileVersion + 1; return r }},
	}
	s := openStore(t, t.TempDir())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Save(tt.rec()); err == nil {
				t.Fatal("saved")
			}
		})
	}
	if _, err := s.Load("../x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load(../x) = %v", err)
	}
}

func TestOpenRefusesDamage(t *testing.T) {
	tests := []struct {
		name, file, body string
	}{
		{"truncated json", testStream + ".json", `{"version":1,"defin`},
		{"unknown key", testStream + ".json", `{"version":1,"paused":true}`},
		{"name does not match id", ident.NewStreamID() + ".json", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			if err := s.Save(testRecord(Active)); err != nil {
				t.Fatal(err)
			}
			_ = s.Close()
			body := []byte(tt.body)
			if tt.body == "" {
				body, _ = os.ReadFile(filepath.Join(dir, "streams", testStream+".json"))
			}
			if err := os.WriteFile(filepath.Join(dir, "streams", tt.file), body, 0o600); err != nil {
				t.Fatal(err)
			}
			if s, err := Open(dir, nil); err == nil {
				_ = s.Close()
				t.Fatal("Open accepted a damaged state directory")
			}
		})
	}
}

func TestOpenLocksDir(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	if s2, err := Open(dir, nil); err == nil {
		_ = s2.Close()
		t.Fatal("two stores opened one directory")
	}
	_ = s.Close()
	s3, err := Open(dir, nil)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	_ = s3.Close()
}
