package atrest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/ident"
)

// fakeKMS is a hand-written KMSAPI: each call goes to its function field.
type fakeKMS struct {
	GenerateDataKeyFn func(ctx context.Context, in *kms.GenerateDataKeyInput) (*kms.GenerateDataKeyOutput, error)
	DecryptFn         func(ctx context.Context, in *kms.DecryptInput) (*kms.DecryptOutput, error)
}

var _ KMSAPI = (*fakeKMS)(nil)

func (f *fakeKMS) GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, _ ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	return f.GenerateDataKeyFn(ctx, in)
}

func (f *fakeKMS) Decrypt(ctx context.Context, in *kms.DecryptInput, _ ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	return f.DecryptFn(ctx, in)
}

// kmsModel is a working in-memory KMS behind a fakeKMS: one key whose
// wrapped data keys are sealed with the encryption context as additional
// data, as KMS binds them. Tests set fail to inject errors into both calls.
type kmsModel struct {
	keyARN    string
	master    *ephemeralSource
	generated atomic.Int64
	decrypted atomic.Int64

	mu   sync.Mutex
	fail error
}

const testKeyARN = "arn:aws:kms:us-east-1:000000000000:key/11111111-2222-3333-4444-555555555555"

func newKMSModel() (*kmsModel, *fakeKMS) {
	master := make([]byte, keyLen)
	_, _ = rand.Read(master)
	m := &kmsModel{keyARN: testKeyARN, master: &ephemeralSource{master: mustGCM(master)}}
	f := &fakeKMS{
		GenerateDataKeyFn: func(ctx context.Context, in *kms.GenerateDataKeyInput) (*kms.GenerateDataKeyOutput, error) {
			if err := m.check(ctx, aws.ToString(in.KeyId)); err != nil {
				return nil, err
			}
			if in.KeySpec != "AES_256" {
				return nil, fmt.Errorf("fake kms: key spec %q", in.KeySpec)
			}
			plain := make([]byte, keyLen)
			_, _ = rand.Read(plain)
			m.generated.Add(1)
			return &kms.GenerateDataKeyOutput{Plaintext: plain, CiphertextBlob: m.wrap(plain, in.EncryptionContext), KeyId: in.KeyId}, nil
		},
		DecryptFn: func(ctx context.Context, in *kms.DecryptInput) (*kms.DecryptOutput, error) {
			if err := m.check(ctx, aws.ToString(in.KeyId)); err != nil {
				return nil, err
			}
			m.decrypted.Add(1)
			plain, err := m.unwrap(in.CiphertextBlob, in.EncryptionContext)
			if err != nil {
				return nil, apiError("InvalidCiphertextException")
			}
			return &kms.DecryptOutput{Plaintext: plain, KeyId: in.KeyId}, nil
		},
	}
	return m, f
}

func (m *kmsModel) setFail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = err
}

func (m *kmsModel) check(ctx context.Context, keyID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if keyID != m.keyARN {
		return apiError("NotFoundException")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fail
}

func (m *kmsModel) wrap(plain []byte, ec map[string]string) []byte {
	ad, _ := json.Marshal(ec) // sorted keys: canonical
	nonce := make([]byte, m.master.master.NonceSize())
	_, _ = rand.Read(nonce)
	return m.master.master.Seal(nonce, nonce, plain, ad)
}

func (m *kmsModel) unwrap(blob []byte, ec map[string]string) ([]byte, error) {
	ad, _ := json.Marshal(ec)
	n := m.master.master.NonceSize()
	if len(blob) < n {
		return nil, errors.New("short blob")
	}
	return m.master.master.Open(nil, blob[:n], blob[n:], ad)
}

// apiError is a KMS error with code as it reaches cdcd from the SDK.
func apiError(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: "fake " + code}
}

// Fixed identifiers for tests.
var (
	testCluster = ident.DeriveID("test cluster")
	testStream  = ident.DeriveID("test stream")
)

func newTestKeyring(t *testing.T, opts Options) (*Keyring, *kmsModel) {
	t.Helper()
	m, f := newKMSModel()
	k, err := NewKMS(f, m.keyARN, testCluster, testStream, opts)
	if err != nil {
		t.Fatal(err)
	}
	k.retryBase = 1 // nanosecond backoff keeps retry tests fast
	return k, m
}

// recorder is a Reporter that keeps what it was told.
type recorder struct {
	mu     sync.Mutex
	events []string
	errs   []error
}

func (r *recorder) Fault(code codes.Code, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "fault "+string(code))
	r.errs = append(r.errs, err)
	return nil
}

func (r *recorder) Recover(owner codes.Owner) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "recover "+string(owner))
	r.errs = append(r.errs, nil)
	return nil
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events, r.errs = nil, nil
	return ev
}
