package record

// Ordering selects how partition keys are chosen (docs/records.md#ordering).
type Ordering string

const (
	// Unordered spreads records evenly over shards (DSQL).
	Unordered Ordering = "UNORDERED"
	// Row keys records by schema, table and primary key so each row's
	// records reach one shard in commit order.
	Row Ordering = "ROW"
)

// Record is one Kinesis record ready to send. Data and PartitionKey are the
// same bytes on every retry and every replay of the same WAL.
type Record struct {
	PartitionKey string
	Data         []byte
}

// Size is what Kinesis counts against its record and request limits.
func (r Record) Size() int { return len(r.PartitionKey) + len(r.Data) }
