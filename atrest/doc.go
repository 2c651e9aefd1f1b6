// Package atrest encrypts the change data that cdcd keeps on disk (spilled
// transactions, anything buffered past the memory budget) under the cluster
// key (docs/glossary.md), and watches that key's health (docs/lifecycle.md#codes,
// CLUSTER_CMK_INACCESSIBLE).
//
// # Keys
//
// A Keyring hands out AES-256-GCM data keys. NewKMS makes them with
// kms:GenerateDataKey under the cluster key and the encryption context
//
//	{"cdcd:cluster": <cluster identifier>, "cdcd:stream": <stream identifier>}
//
// so a data key wrapped for one stream cannot be unwrapped for another, and
// a key policy can scope cdcd with the condition keys
// kms:EncryptionContext:cdcd:cluster and kms:EncryptionContext:cdcd:stream.
// cdcd needs kms:GenerateDataKey and kms:Decrypt on the key, nothing else.
// Without a cluster key, NewEphemeral wraps data keys with a random key that
// lives only in this process's memory and dies with it.
//
// Plaintext data keys live only in memory. A data key is retired after
// Options.RotateBytes bytes or Options.RotateAfter, whichever comes first,
// and when the Checker finds the cluster key unusable; the next frame any
// Writer seals then needs a new data key, and so a disabled key stops new
// data reaching the disk within one check.
//
// # Files
//
// A file is a header and a sequence of blocks; all integers are big-endian:
//
//	header   "CDCDSPL\x01" (8 bytes) | file id (16 random bytes)
//	key      'K' | serial u32 | wrapped length u16 | wrapped data key
//	frame    'F' | ciphertext length u32 | AES-256-GCM ciphertext and tag
//	last     'L' | ciphertext length u32 | AES-256-GCM ciphertext and tag
//
// A key block starts a segment: the frames after it are sealed with that
// data key. Segments exist so that a data key can rotate in the middle of a
// long file. The wrapped key makes a file self-describing: any process that
// may call kms:Decrypt with the same encryption context can read it.
//
// The frames' plaintexts, concatenated, are the records, each a uvarint
// length and that many bytes, so small records share a frame and large ones
// span several; a frame holds at most 64 KiB, which bounds what a reader
// allocates before it has authenticated anything.
//
// Each frame's nonce is the segment's serial followed by the frame's index
// within the segment (u32 | u64). The Keyring hands out serials from a
// counter per data key, so no nonce repeats under one data key in any file
// of this process, and data keys are never shared across processes. Nonces
// are derived, not stored: a reader never trusts a nonce taken from disk.
// Each frame's additional data is the header, the segment index, the
// frame's index in the file and its block type, so a frame that is
// modified, moved, dropped, duplicated or copied from another file fails to
// authenticate. Exactly one 'L' frame ends a file and nothing may follow it,
// so a file cut short at any byte, a frame boundary included, is detected.
//
// # Crashes
//
// Spill files are only an extension of memory: they are not synced, and
// after a crash the replication slot replays every change after the last
// checkpoint, so Sweep deletes all of them at startup. What a crash leaves
// behind until then is ciphertext under a data key that is either wrapped
// by the cluster key or, without one, lost with the process.
package atrest
