package capture

import (
	"fmt"
	"maps"

	"github.com/jackc/pglogrepl"

	"github.com/cdcd-dev/cdcd/record"
)

// streamTxn is a transaction that PostgreSQL streams while it is in progress
// (pgoutput protocol 2, streaming 'on'): its changes arrive in blocks between
// Stream Start and Stream Stop, interleaved with other transactions, and it
// ends with Stream Commit or Stream Abort. It is kept in memory, keyed by its
// top-level xid, until then; nothing of it is handed over before it commits,
// so an aborted transaction leaves no record.
type streamTxn struct {
	xid     uint32
	changes []record.Change
	// subxids[i] is the (sub)transaction that made changes[i]: a
	// subtransaction abort (ROLLBACK TO SAVEPOINT) discards exactly its
	// changes. The abort of a subtransaction also names each of its
	// committed children, so they are discarded by their own xid.
	subxids []uint32
	// rels holds the Relation messages sent inside this transaction's
	// blocks. pgoutput sends a relation's schema again in every streamed
	// transaction that uses it and counts it as sent for later
	// transactions only if this one commits: so they join the shared
	// cache at Stream Commit and vanish with an abort.
	rels  map[uint32]*record.Relation
	bytes int
	// mem is the estimated memory of changes; spill, once the budget is
	// passed, holds the rest of them (assemble_spill.go), and abortedSubs
	// the subtransactions rolled back after some of their changes went
	// there.
	mem         int
	spill       *record.ChangeSpill
	abortedSubs map[uint32]bool
}

// relation looks a relation up in this transaction's schema first.
func (st *streamTxn) relation(shared map[uint32]*record.Relation) relLookup {
	return func(id uint32) (*record.Relation, bool) {
		if r, ok := st.rels[id]; ok {
			return r, true
		}
		r, ok := shared[id]
		return r, ok
	}
}

func (a *assembler) streamStart(m *pglogrepl.StreamStartMessageV2) error {
	if a.inTxn {
		return fmt.Errorf("stream start of xid %d inside open xid %d", m.Xid, a.txn.Xid)
	}
	st, ok := a.streams[m.Xid]
	switch {
	case m.FirstSegment == 1 && ok:
		return fmt.Errorf("first stream segment of xid %d, which is already open", m.Xid)
	case m.FirstSegment == 1:
		st = &streamTxn{xid: m.Xid}
		a.streams[m.Xid] = st
	case !ok:
		// The session began after this transaction's first segment: its
		// earlier changes were never received, so it cannot be assembled.
		return fmt.Errorf("stream segment of xid %d without its first segment", m.Xid)
	}
	a.inStream, a.streamXid = true, m.Xid
	return nil
}

// inStreamMessage handles a message inside a stream block: every one carries
// the xid of the transaction (for changes: the subtransaction) it belongs to.
func (a *assembler) inStreamMessage(msg pglogrepl.Message) error {
	st := a.streams[a.streamXid]
	switch m := msg.(type) {
	case *pglogrepl.StreamStopMessageV2:
		a.inStream = false
		return nil
	case *pglogrepl.RelationMessageV2:
		rel, err := a.relation(&m.RelationMessage)
		if err != nil {
			return err
		}
		if st.rels == nil {
			st.rels = make(map[uint32]*record.Relation)
		}
		st.rels[m.RelationID] = rel
		return nil
	case *pglogrepl.TypeMessageV2:
		return a.typeMessage(&m.TypeMessage)
	case *pglogrepl.LogicalDecodingMessageV2:
		a.message(&m.LogicalDecodingMessage)
		return nil
	case *changeMessage:
		return a.streamChange(st, m.xid, m)
	case *pglogrepl.InsertMessageV2:
		return a.streamChange(st, m.Xid, &m.InsertMessage)
	case *pglogrepl.UpdateMessageV2:
		return a.streamChange(st, m.Xid, &m.UpdateMessage)
	case *pglogrepl.DeleteMessageV2:
		return a.streamChange(st, m.Xid, &m.DeleteMessage)
	case *pglogrepl.TruncateMessageV2:
		return a.streamChange(st, m.Xid, &m.TruncateMessage)
	case *pglogrepl.OriginMessage:
		a.log.Debug("streamed transaction from replication origin", "origin", m.Name)
		return nil
	}
	return fmt.Errorf("unexpected pgoutput message %T inside the stream block of xid %d", msg, a.streamXid)
}

func (a *assembler) streamChange(st *streamTxn, subxid uint32, msg pglogrepl.Message) error {
	n, err := a.changes(msg, st.relation(a.rels), func(c record.Change) {
		st.changes = append(st.changes, c)
		st.subxids = append(st.subxids, subxid)
		cm := changeMem(&c)
		st.mem += cm
		a.held += cm
	})
	st.bytes += n
	if err != nil {
		return err
	}
	return a.spillStream(st)
}

func (a *assembler) streamCommit(m *pglogrepl.StreamCommitMessageV2) (*record.Txn, error) {
	if a.inTxn {
		return nil, fmt.Errorf("stream commit of xid %d inside open xid %d", m.Xid, a.txn.Xid)
	}
	st, ok := a.streams[m.Xid]
	if !ok {
		return nil, fmt.Errorf("stream commit of xid %d, which was never started", m.Xid)
	}
	delete(a.streams, m.Xid)
	maps.Copy(a.rels, st.rels)
	t := &record.Txn{
		Xid:        m.Xid,
		CommitLSN:  uint64(m.CommitLSN),
		EndLSN:     uint64(m.TransactionEndLSN),
		CommitTime: m.CommitTime,
		Changes:    st.changes,
	}
	if err := a.finishStream(st, t); err != nil {
		return nil, err
	}
	return t, nil
}

func (a *assembler) streamAbort(m *pglogrepl.StreamAbortMessageV2) error {
	st, ok := a.streams[m.Xid]
	if !ok {
		// Nothing of it was received, so nothing is to be discarded.
		return nil
	}
	if m.SubXid == m.Xid {
		delete(a.streams, m.Xid)
		a.dropStream(st)
		a.met.aborts.Inc()
		a.log.Debug("streamed transaction aborted", "xid", m.Xid, "changes", len(st.changes))
		return nil
	}
	if st.spill != nil {
		// Its changes already spilled are skipped when read back.
		if st.abortedSubs == nil {
			st.abortedSubs = make(map[uint32]bool)
		}
		st.abortedSubs[m.SubXid] = true
	}
	kept := 0
	for i, c := range st.changes {
		if st.subxids[i] == m.SubXid {
			st.bytes -= tupleBytes(c.Old) + tupleBytes(c.New)
			cm := changeMem(&c)
			st.mem -= cm
			a.held -= cm
			continue
		}
		st.changes[kept], st.subxids[kept] = c, st.subxids[i]
		kept++
	}
	clear(st.changes[kept:])
	st.changes, st.subxids = st.changes[:kept], st.subxids[:kept]
	return nil
}

// openBytes is the tuple data held for transactions not yet committed.
func (a *assembler) openBytes() int {
	n := a.bytes
	for _, st := range a.streams {
		n += st.bytes
	}
	return n
}

func tupleBytes(t record.Tuple) int {
	n := 0
	for _, d := range t {
		n += len(d.Data)
	}
	return n
}
