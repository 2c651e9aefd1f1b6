package record

import (
	"bytes"
	"crypto/md5"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// kplSchema is the Kinesis Producer Library's published messages.proto
// (AggregatedRecord, Record, Tag), built as a descriptor so that the
// protobuf runtime, not the code under test, encodes and decodes the
// reference bytes.
func kplSchema(t *testing.T) protoreflect.MessageDescriptor {
	t.Helper()
	field := func(name string, num int32, label descriptorpb.FieldDescriptorProto_Label, typ descriptorpb.FieldDescriptorProto_Type, msg string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(num), Label: label.Enum(), Type: typ.Enum()}
		if msg != "" {
			f.TypeName = proto.String(msg)
		}
		return f
	}
	const (
		req = descriptorpb.FieldDescriptorProto_LABEL_REQUIRED
		opt = descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
		rep = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
		str = descriptorpb.FieldDescriptorProto_TYPE_STRING
		u64 = descriptorpb.FieldDescriptorProto_TYPE_UINT64
		byt = descriptorpb.FieldDescriptorProto_TYPE_BYTES
		msg = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	)
	fd := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("messages.proto"),
		Package: proto.String("aws.kinesis.protobuf"),
		Syntax:  proto.String("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("AggregatedRecord"), Field: []*descriptorpb.FieldDescriptorProto{
				field("partition_key_table", 1, rep, str, ""),
				field("explicit_hash_key_table", 2, rep, str, ""),
				field("records", 3, rep, msg, ".aws.kinesis.protobuf.Record"),
			}},
			{Name: proto.String("Tag"), Field: []*descriptorpb.FieldDescriptorProto{
				field("key", 1, req, str, ""),
				field("value", 2, opt, str, ""),
			}},
			{Name: proto.String("Record"), Field: []*descriptorpb.FieldDescriptorProto{
				field("partition_key_index", 1, req, u64, ""),
				field("explicit_hash_key_index", 2, opt, u64, ""),
				field("data", 3, req, byt, ""),
				field("tags", 4, rep, msg, ".aws.kinesis.protobuf.Tag"),
			}},
		},
	}
	file, err := protodesc.NewFile(fd, nil)
	if err != nil {
		t.Fatal(err)
	}
	return file.Messages().ByName("AggregatedRecord")
}

func kplRecords(n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{
			PartitionKey: fmt.Sprintf("%032x", i%3), // shared keys share a table entry
			Data:         fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i, bytes.Repeat([]byte("x"), i*37)),
		}
	}
	return recs
}

// TestKPLAggregateReadByProtobuf: what cdcd writes is the published format,
// as the protobuf runtime reads it: magic, a valid AggregatedRecord whose
// records carry each partition key and data in order, every explicit hash
// key the aggregate's, and the MD5 trailer.
func TestKPLAggregateReadByProtobuf(t *testing.T) {
	desc := kplSchema(t)
	recs := kplRecords(7)
	data, outer := AppendKPLAggregate([]byte("prefix"), recs)
	if !bytes.HasPrefix(data, []byte("prefix")) {
		t.Fatal("dst not appended to")
	}
	data = data[len("prefix"):]
	if outer != recs[0].PartitionKey {
		t.Fatalf("aggregate partition key %q, want the first record's %q", outer, recs[0].PartitionKey)
	}
	if !bytes.Equal(data[:4], []byte{0xF3, 0x89, 0x9A, 0xC2}) {
		t.Fatalf("magic % x", data[:4])
	}
	body, trailer := data[4:len(data)-16], data[len(data)-16:]
	if sum := md5.Sum(body); !bytes.Equal(sum[:], trailer) {
		t.Fatal("trailer is not the MD5 of the body")
	}
	m := dynamicpb.NewMessage(desc)
	if err := proto.Unmarshal(body, m); err != nil {
		t.Fatalf("protobuf runtime refuses the body: %v", err)
	}
	fields := desc.Fields()
	keys := m.Get(fields.ByName("partition_key_table")).List()
	hashes := m.Get(fields.ByName("explicit_hash_key_table")).List()
	got := m.Get(fields.ByName("records")).List()
	if got.Len() != len(recs) || keys.Len() != 3 || hashes.Len() != 1 {
		t.Fatalf("%d records, %d keys, %d hash keys; want %d, 3, 1", got.Len(), keys.Len(), hashes.Len(), len(recs))
	}
	if h := hashes.Get(0).String(); h != HashKey(outer) {
		t.Fatalf("explicit hash key %s, want %s", h, HashKey(outer))
	}
	rf := desc.Fields().ByName("records").Message().Fields()
	for i, r := range recs {
		rm := got.Get(i).Message()
		if k := keys.Get(int(rm.Get(rf.ByName("partition_key_index")).Uint())).String(); k != r.PartitionKey {
			t.Errorf("record %d partition key %q, want %q", i, k, r.PartitionKey)
		}
		if !rm.Has(rf.ByName("explicit_hash_key_index")) || rm.Get(rf.ByName("explicit_hash_key_index")).Uint() != 0 {
			t.Errorf("record %d lacks the aggregate's explicit hash key", i)
		}
		if d := rm.Get(rf.ByName("data")).Bytes(); !bytes.Equal(d, r.Data) {
			t.Errorf("record %d data %q, want %q", i, d, r.Data)
		}
	}
	if size, bound := len(data), KPLOverhead+len(recs)*KPLRecordOverhead+sizeOf(recs); size > bound {
		t.Errorf("aggregate of %d bytes over the bound %d the sink plans with", size, bound)
	}
}

func sizeOf(recs []Record) int {
	n := 0
	for _, r := range recs {
		n += r.Size()
	}
	return n
}

// TestDeaggregateKPLFromProtobuf: an aggregate written by the protobuf
// runtime, as the Producer Library writes it (tags, no explicit hash keys,
// fields in any order), is read back record by record.
func TestDeaggregateKPLFromProtobuf(t *testing.T) {
	desc := kplSchema(t)
	fields := desc.Fields()
	recDesc := fields.ByName("records").Message()
	rf := recDesc.Fields()
	tagDesc := rf.ByName("tags").Message()
	m := dynamicpb.NewMessage(desc)
	keys := m.Mutable(fields.ByName("partition_key_table")).List()
	keys.Append(protoreflect.ValueOfString("k0"))
	keys.Append(protoreflect.ValueOfString("k1"))
	list := m.Mutable(fields.ByName("records")).List()
	want := []KPLRecord{{PartitionKey: "k1", Data: []byte(`{"a":1}`)}, {PartitionKey: "k0", Data: []byte(`{"b":2}`)}, {PartitionKey: "k1", Data: []byte{}}}
	for i, w := range want {
		r := dynamicpb.NewMessage(recDesc)
		r.Set(rf.ByName("partition_key_index"), protoreflect.ValueOfUint64(uint64(1-i%2)))
		r.Set(rf.ByName("data"), protoreflect.ValueOfBytes(w.Data))
		tag := dynamicpb.NewMessage(tagDesc)
		tag.Set(tagDesc.Fields().ByName("key"), protoreflect.ValueOfString("t"))
		r.Mutable(rf.ByName("tags")).List().Append(protoreflect.ValueOfMessage(tag))
		list.Append(protoreflect.ValueOfMessage(r))
	}
	body, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(body)
	data := append(append([]byte{0xF3, 0x89, 0x9A, 0xC2}, body...), sum[:]...)
	got, err := DeaggregateKPL(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].PartitionKey != want[i].PartitionKey || !bytes.Equal(got[i].Data, want[i].Data) || got[i].ExplicitHashKey != "" {
			t.Errorf("record %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestDeaggregateKPLRefusesDamage: a flipped bit, a cut trailer or a body
// whose indexes point nowhere is an error, never a record.
func TestDeaggregateKPLRefusesDamage(t *testing.T) {
	good, _ := AppendKPLAggregate(nil, kplRecords(3))
	flipped := bytes.Clone(good)
	flipped[10] ^= 1
	badIndex := append([]byte{0xF3, 0x89, 0x9A, 0xC2}, 0x1a, 0x04, 0x08, 0x05, 0x1a, 0x00)
	sum := md5.Sum(badIndex[4:])
	badIndex = append(badIndex, sum[:]...)
	for name, data := range map[string][]byte{
		"flipped bit": flipped,
		"cut trailer": good[:len(good)-1],
		"bad index":   badIndex,
		"magic only":  good[:4],
	} {
		if recs, err := DeaggregateKPL(data); err == nil {
			t.Errorf("%s: %d records, no error", name, len(recs))
		}
	}
	plain := []byte(`{"type":"i"}`)
	if got, err := Deaggregate(plain); err != nil || len(got) != 1 || !bytes.Equal(got[0], plain) {
		t.Errorf("a plain record deaggregates to %q, %v", got, err)
	}
}

// TestHashKey: Kinesis' hash key of a partition key is the MD5 as an
// unsigned 128-bit decimal (from its API reference); "a" has the MD5
// 0cc175b9c0f1b6a831c399e269772661.
func TestHashKey(t *testing.T) {
	if got, want := HashKey("a"), "16955237001963240173058271559858726497"; got != want {
		t.Fatalf("HashKey(a) = %s, want %s", got, want)
	}
}

func FuzzDeaggregateKPL(f *testing.F) {
	good, _ := AppendKPLAggregate(nil, kplRecords(3))
	f.Add(good)
	f.Add([]byte{0xF3, 0x89, 0x9A, 0xC2})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := DeaggregateKPL(data)
		if err != nil {
			return
		}
		again, _ := AppendKPLAggregate(nil, toRecords(recs))
		if len(recs) > 0 {
			if back, err := DeaggregateKPL(again); err != nil || len(back) != len(recs) {
				t.Fatalf("re-aggregated %d records read back as %d, %v", len(recs), len(back), err)
			}
		}
	})
}

func toRecords(k []KPLRecord) []Record {
	out := make([]Record, len(k))
	for i, r := range k {
		out[i] = Record{PartitionKey: r.PartitionKey, Data: r.Data}
	}
	return out
}
