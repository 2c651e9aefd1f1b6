package testenv

import "encoding/json"

// Record is a change record (docs/records.md#envelope) as a consumer of
// its own decodes it, with encoding/json and not cdcd's record package:
// the row images keep each value's JSON text.
type Record struct {
	Type   string                     `json:"type"`
	Op     string                     `json:"op"`
	Before map[string]json.RawMessage `json:"before"`
	After  map[string]json.RawMessage `json:"after"`
	Source RecordSource               `json:"source"`
	TsMs   int64                      `json:"ts_ms"`
	TsNs   int64                      `json:"ts_ns"`
}

// RecordSource is a record's source object.
type RecordSource struct {
	Version string `json:"version"`
	TsMs    int64  `json:"ts_ms"`
	TsNs    int64  `json:"ts_ns"`
	TxID    string `json:"txId"`
	Schema  string `json:"schema"`
	Table   string `json:"table"`
	DB      string `json:"db"`
	Cluster string `json:"cluster"`
	LSN     string `json:"lsn"`
}
