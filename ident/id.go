// Package ident is the one place that parses and validates the identifiers
// cdcd deals in: its own cluster and stream identifiers and stream ARNs
// (docs/glossary.md), and the AWS partitions, regions, account ids, names
// and ARNs that configuration and the control plane accept. Each shape is
// written once, so that a value one part of cdcd accepts is not refused by
// another.
package ident

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"fmt"
)

// IDLen is the length of cluster and stream identifiers (docs/glossary.md).
const IDLen = 26

// idEncoding is lowercase, unpadded RFC 4648 base32: 16 bytes become exactly
// 26 characters of [a-z2-7], a subset of the [a-z0-9] that DSQL identifiers
// use, and the same alphabet as source.txId.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewStreamID returns a random stream identifier (128 bits).
func NewStreamID() string {
	var b [16]byte
	// crypto/rand.Read never returns an error since Go 1.24; it crashes
	// the program instead if the kernel cannot supply randomness.
	_, _ = rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}

// DeriveID returns a deterministic identifier for parts: the first 16 bytes
// of a SHA-256 over the length-prefixed parts, so ("ab","c") and ("a","bc")
// differ. Config-managed streams use it so that the same file entry names
// the same stream (and slot) on every start, and a cluster without a
// configured identifier uses it on the server's system identifier.
func DeriveID(parts ...string) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return idEncoding.EncodeToString(h.Sum(nil)[:16])
}

// ValidID reports whether s has the shape of a cluster or stream
// identifier: 26 characters of [a-z0-9]. Identifiers become file names, so
// this check also keeps path separators out of the state directory.
func ValidID(s string) bool {
	if len(s) != IDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// StreamARN is a stream's ARN (docs/glossary.md).
func StreamARN(partition, region, account, clusterID, streamID string) string {
	return fmt.Sprintf("arn:%s:cdcd:%s:%s:cluster/%s/stream/%s",
		partition, region, account, clusterID, streamID)
}
