package consumer

import (
	"encoding/json"

	"github.com/cdcd-dev/cdcd/record"
)

// encodeFull writes a reassembled record in the envelope
// (docs/records.md#envelope), as it would have been had it fit in one
// Kinesis record.
func encodeFull(m *record.Message) ([]byte, error) {
	type source struct {
		Version string `json:"version"`
		TsMs    int64  `json:"ts_ms"`
		TsNs    int64  `json:"ts_ns"`
		TxID    string `json:"txId"`
		Schema  string `json:"schema"`
		Table   string `json:"table"`
		DB      string `json:"db"`
		Cluster string `json:"cluster"`
		LSN     string `json:"lsn,omitempty"`
	}
	return json.Marshal(struct {
		Type   string          `json:"type"`
		Op     string          `json:"op"`
		Before record.RowImage `json:"before"`
		After  record.RowImage `json:"after"`
		Source source          `json:"source"`
		TsMs   int64           `json:"ts_ms"`
		TsNs   int64           `json:"ts_ns"`
	}{"full", m.Op, m.Before, m.After, source{m.Source.Version, m.Source.TsMs, m.Source.TsNs, m.Source.TxID,
		m.Source.Schema, m.Source.Table, m.Source.DB, m.Source.Cluster, m.Source.LSN}, m.TsMs, m.TsNs})
}
