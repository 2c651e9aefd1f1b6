package atrest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/cdcd-dev/cdcd/ident"
	"github.com/cdcd-dev/cdcd/retry"
)

// Encryption context keys (see the package documentation).
const (
	ContextCluster = "cdcd:cluster"
	ContextStream  = "cdcd:stream"
)

// Defaults for Options.
const (
	DefaultRotateBytes = 1 << 30
	DefaultRotateAfter = time.Hour
	DefaultCallTimeout = 30 * time.Second
)

// keyLen is the AES-256 key length.
const keyLen = 32

// cacheLen bounds how many unwrapped data keys a Keyring keeps for readers.
// Files are short-lived, so the keys they need are the last few generated;
// an older one costs one kms:Decrypt.
const cacheLen = 64

// KMSAPI is the part of the KMS client a Keyring calls.
type KMSAPI interface {
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

var _ KMSAPI = (*kms.Client)(nil)

// Options configure a KMS Keyring. Zero values take the defaults.
type Options struct {
	// RotateBytes retires a data key after it sealed this many bytes.
	RotateBytes int64
	// RotateAfter retires a data key this long after it was generated.
	RotateAfter time.Duration
	// CallTimeout bounds one key operation, KMS retries included. Writers
	// and readers have no context of their own, so this is what stops a
	// spill from waiting on an unreachable KMS forever.
	CallTimeout time.Duration
	// Metrics counts data keys; nil counts nothing.
	Metrics *Metrics
	// Now is the clock for RotateAfter; nil means time.Now.
	Now func() time.Time
}

// EncryptionContext is the context every data key of a stream is bound to.
func EncryptionContext(clusterID, streamID string) map[string]string {
	return map[string]string{ContextCluster: clusterID, ContextStream: streamID}
}

// keySource makes and unwraps data keys: KMS or the ephemeral in-memory key.
type keySource interface {
	generate(ctx context.Context) (plain, wrapped []byte, err error)
	unwrap(ctx context.Context, wrapped []byte) (plain []byte, err error)
}

// dataKey is one data key in use. Its plaintext exists only inside aead.
type dataKey struct {
	aead    cipher.AEAD
	wrapped []byte
	created time.Time
	// used counts plaintext bytes sealed, for RotateBytes.
	used atomic.Int64
	// retired is set when the Checker finds the cluster key unusable.
	retired atomic.Bool
	// serials is the next segment serial (guarded by Keyring.mu).
	serials uint64
}

// Keyring hands out data keys to Writers and unwraps them for Readers. It
// is safe for concurrent use.
type Keyring struct {
	src       keySource
	keyARN    string // empty for an ephemeral keyring
	streamID  string
	rotBytes  int64
	rotAfter  time.Duration
	timeout   time.Duration
	retryBase time.Duration
	metrics   *Metrics
	now       func() time.Time

	// genMu serialises data key generation; it is taken before mu.
	genMu sync.Mutex

	mu  sync.Mutex
	cur *dataKey
	// known maps wrapped keys to unwrapped ones; order is insertion order
	// for eviction.
	known map[string]*dataKey
	order []string
	// onError learns of key failures in Writers and Readers (the Checker).
	onError atomic.Pointer[func(error)]
}

// NewKMS returns a Keyring whose data keys come from kms:GenerateDataKey
// under keyARN, bound to the cluster and stream (EncryptionContext).
func NewKMS(api KMSAPI, keyARN, clusterID, streamID string, opts Options) (*Keyring, error) {
	switch {
	case api == nil:
		return nil, errors.New("new kms keyring: nil KMS client")
	case keyARN == "":
		return nil, errors.New("new kms keyring: empty key ARN")
	case !ident.ValidID(clusterID):
		return nil, fmt.Errorf("new kms keyring: cluster identifier %q: want %d characters of [a-z0-9]", clusterID, ident.IDLen)
	case !ident.ValidID(streamID):
		return nil, fmt.Errorf("new kms keyring: stream identifier %q: want %d characters of [a-z0-9]", streamID, ident.IDLen)
	case opts.RotateBytes < 0 || opts.RotateAfter < 0 || opts.CallTimeout < 0:
		return nil, errors.New("new kms keyring: RotateBytes, RotateAfter and CallTimeout must not be negative")
	}
	src := &kmsSource{api: api, keyARN: keyARN, ctx: EncryptionContext(clusterID, streamID)}
	k := newKeyring(src, opts)
	k.keyARN, k.streamID = keyARN, streamID
	return k, nil
}

// NewEphemeral returns a Keyring for a stream without a cluster key. Its
// data keys are wrapped with a random key that is never written anywhere,
// so its files are unreadable once the process ends.
func NewEphemeral() *Keyring {
	master := make([]byte, keyLen)
	_, _ = rand.Read(master) // never fails since Go 1.24
	return newKeyring(&ephemeralSource{master: mustGCM(master)}, Options{})
}

func newKeyring(src keySource, opts Options) *Keyring {
	if opts.RotateBytes == 0 {
		opts.RotateBytes = DefaultRotateBytes
	}
	if opts.RotateAfter == 0 {
		opts.RotateAfter = DefaultRotateAfter
	}
	if opts.CallTimeout == 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Keyring{
		src:       src,
		rotBytes:  opts.RotateBytes,
		rotAfter:  opts.RotateAfter,
		timeout:   opts.CallTimeout,
		retryBase: 100 * time.Millisecond,
		metrics:   opts.Metrics,
		now:       opts.Now,
		known:     make(map[string]*dataKey),
	}
}

// KeyARN is the cluster key, or "" for an ephemeral keyring.
func (k *Keyring) KeyARN() string { return k.keyARN }

// Probe checks that the cluster key is usable now: it generates a data key
// and unwraps it again, so both permissions cdcd needs are exercised. The
// key is discarded. Transient failures are retried within ctx.
func (k *Keyring) Probe(ctx context.Context) error {
	var wrapped []byte
	err := k.retry(ctx, func(ctx context.Context) error {
		plain, w, err := k.src.generate(ctx)
		clear(plain)
		wrapped = w
		return err
	})
	if err != nil {
		return fmt.Errorf("generate data key: %w", err)
	}
	err = k.retry(ctx, func(ctx context.Context) error {
		plain, err := k.src.unwrap(ctx, wrapped)
		clear(plain)
		return err
	})
	if err != nil {
		return fmt.Errorf("decrypt data key: %w", err)
	}
	return nil
}

// lease returns the current data key and a serial for a new segment under
// it, generating a key first when there is none or the current one is
// stale. A failure is reported to the error hook after mu is released, so
// the hook may retire keys.
func (k *Keyring) lease() (*dataKey, uint32, error) {
	dk, serial, err := k.leaseLocked()
	if err != nil {
		k.report(err)
	}
	return dk, serial, err
}

// leaseLocked serialises key generation on genMu: writers that find the
// key stale together would otherwise each generate one. mu is not held
// across the KMS call, so readers and retire never wait for KMS.
func (k *Keyring) leaseLocked() (*dataKey, uint32, error) {
	k.genMu.Lock()
	defer k.genMu.Unlock()
	k.mu.Lock()
	dk := k.cur
	if dk != nil && (k.stale(dk) || dk.serials > math.MaxUint32) {
		dk = nil
	}
	k.mu.Unlock()
	if dk == nil {
		var err error
		if dk, err = k.generate(); err != nil {
			return nil, 0, err
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cur != dk && !dk.retired.Load() {
		k.cur = dk
		k.remember(dk)
	}
	// Serials come from the key, not from k.cur, which retire may have
	// cleared meanwhile; dk stays usable for this one segment.
	serial := uint32(dk.serials)
	dk.serials++
	return dk, serial, nil
}

// stale reports whether dk must not seal another frame.
func (k *Keyring) stale(dk *dataKey) bool {
	return dk.retired.Load() || dk.used.Load() >= k.rotBytes || k.now().Sub(dk.created) >= k.rotAfter
}

// retire stops the current data key from sealing more frames, so that the
// next frame needs the cluster key. Keys stay in the cache for reading:
// data already on disk must remain deliverable.
func (k *Keyring) retire() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cur != nil {
		k.cur.retired.Store(true)
		k.cur = nil
	}
}

func (k *Keyring) generate() (*dataKey, error) {
	ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
	defer cancel()
	var plain, wrapped []byte
	err := k.retry(ctx, func(ctx context.Context) error {
		var err error
		plain, wrapped, err = k.src.generate(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("generate data key: %w", err)
	}
	aead, err := newGCM(plain)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("generate data key: %w", err)
	}
	k.metrics.dataKey(k.streamID)
	return &dataKey{aead: aead, wrapped: wrapped, created: k.now()}, nil
}

// open returns the AEAD for a wrapped data key read from a file.
func (k *Keyring) open(wrapped []byte) (cipher.AEAD, error) {
	k.mu.Lock()
	dk, ok := k.known[string(wrapped)]
	k.mu.Unlock()
	if ok {
		return dk.aead, nil
	}
	// Unwrap without holding mu: a slow Decrypt must not stall writers.
	ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
	defer cancel()
	var plain []byte
	err := k.retry(ctx, func(ctx context.Context) error {
		var err error
		plain, err = k.src.unwrap(ctx, wrapped)
		return err
	})
	if err != nil {
		if Classify(err) == ClassForeign {
			// The file's wrapped key is damaged or was not made for this
			// key and context: the file is bad, the cluster key is not.
			return nil, fmt.Errorf("%w: decrypt data key: %w", ErrCorrupt, err)
		}
		err = fmt.Errorf("decrypt data key: %w", err)
		k.report(err)
		return nil, err
	}
	aead, err := newGCM(plain)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("decrypt data key: %w", err)
	}
	k.mu.Lock()
	// Keep it retired: it only ever opens files, new frames get new keys.
	dk = &dataKey{aead: aead, wrapped: append([]byte(nil), wrapped...), created: k.now()}
	dk.retired.Store(true)
	k.remember(dk)
	k.mu.Unlock()
	return aead, nil
}

// remember caches dk for readers; the caller holds mu.
func (k *Keyring) remember(dk *dataKey) {
	id := string(dk.wrapped)
	if _, ok := k.known[id]; ok {
		return
	}
	if len(k.order) >= cacheLen {
		delete(k.known, k.order[0])
		k.order = k.order[1:]
	}
	k.known[id] = dk
	k.order = append(k.order, id)
}

// setErrorHook installs the function told of key failures on use.
func (k *Keyring) setErrorHook(fn func(error)) { k.onError.Store(&fn) }

// report passes a failure on use to the hook. Callers do not hold mu.
func (k *Keyring) report(err error) {
	if fn := k.onError.Load(); fn != nil {
		(*fn)(err)
	}
}

// retry runs op until it succeeds, fails with an error that is not
// transient, or ctx ends. The SDK retries too, but only a few times;
// sustained KMS throttling needs a longer, bounded patience. When ctx ends
// it returns the last transient error, which says more than "deadline
// exceeded".
func (k *Keyring) retry(ctx context.Context, op func(context.Context) error) error {
	s := retry.Schedule{Initial: k.retryBase, Max: max(k.retryBase, k.timeout/4)}
	var last error // the last transient error; nil once op settles it
	err := retry.Do(ctx, s, func() error {
		err := op(ctx)
		switch {
		case Classify(err) != ClassTransient: // success, or an answer a retry would not change
			last = nil
			return retry.Permanent(err)
		case ctx.Err() != nil && last != nil:
			// This attempt was cut off by the deadline: keep the error
			// before it.
		default:
			last = err
		}
		return err
	}, nil)
	if last != nil {
		return last // ctx ended
	}
	return err
}

// kmsSource makes data keys with KMS.
type kmsSource struct {
	api    KMSAPI
	keyARN string
	ctx    map[string]string
}

func (s *kmsSource) generate(ctx context.Context) ([]byte, []byte, error) {
	out, err := s.api.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             aws.String(s.keyARN),
		KeySpec:           kmstypes.DataKeySpecAes256,
		EncryptionContext: s.ctx,
	})
	if err != nil {
		return nil, nil, err
	}
	if len(out.Plaintext) != keyLen || len(out.CiphertextBlob) == 0 || len(out.CiphertextBlob) > maxWrapped {
		clear(out.Plaintext)
		return nil, nil, fmt.Errorf("kms returned a %d-byte data key and a %d-byte blob: want %d and 1..%d",
			len(out.Plaintext), len(out.CiphertextBlob), keyLen, maxWrapped)
	}
	return out.Plaintext, out.CiphertextBlob, nil
}

func (s *kmsSource) unwrap(ctx context.Context, wrapped []byte) ([]byte, error) {
	// KeyId pins the key: a blob wrapped by another key is refused rather
	// than decrypted with whatever key it names.
	out, err := s.api.Decrypt(ctx, &kms.DecryptInput{
		CiphertextBlob:    wrapped,
		KeyId:             aws.String(s.keyARN),
		EncryptionContext: s.ctx,
	})
	if err != nil {
		return nil, err
	}
	if len(out.Plaintext) != keyLen {
		clear(out.Plaintext)
		return nil, fmt.Errorf("kms returned a %d-byte data key: want %d", len(out.Plaintext), keyLen)
	}
	return out.Plaintext, nil
}

// ephemeralSource wraps random data keys with an in-memory master key.
// Wrapping, rather than handing out the master key, keeps one code path
// and one file format for both kinds of keyring.
type ephemeralSource struct {
	master cipher.AEAD
}

// ephemeralAD keeps ephemeral wrapped keys from being confused with
// anything else sealed under the same master key.
var ephemeralAD = []byte("cdcd atrest ephemeral data key v1")

func (s *ephemeralSource) generate(context.Context) ([]byte, []byte, error) {
	plain := make([]byte, keyLen)
	nonce := make([]byte, s.master.NonceSize())
	_, _ = rand.Read(plain)
	// Random nonces: a process would need billions of data keys before
	// a collision became plausible.
	_, _ = rand.Read(nonce)
	return plain, s.master.Seal(nonce, nonce, plain, ephemeralAD), nil
}

func (s *ephemeralSource) unwrap(_ context.Context, wrapped []byte) ([]byte, error) {
	n := s.master.NonceSize()
	if len(wrapped) < n {
		return nil, fmt.Errorf("%w: wrapped key too short", ErrCorrupt)
	}
	plain, err := s.master.Open(nil, wrapped[:n], wrapped[n:], ephemeralAD)
	if err != nil {
		// Also what a file from an earlier process gets: its key is gone.
		return nil, fmt.Errorf("%w: data key not wrapped by this process", ErrCorrupt)
	}
	return plain, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func mustGCM(key []byte) cipher.AEAD {
	aead, err := newGCM(key)
	if err != nil {
		panic("atrest: " + err.Error()) // only for a key length bug
	}
	return aead
}
