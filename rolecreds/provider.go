package rolecreds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// AssumeRoleAPI is the one STS call rolecreds makes; *sts.Client has it.
type AssumeRoleAPI interface {
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}

var (
	_ AssumeRoleAPI           = (*sts.Client)(nil)
	_ aws.CredentialsProvider = (*provider)(nil)
	_ io.Closer               = (*provider)(nil)
)

// ErrClosed is returned by Retrieve after Close.
var ErrClosed = errors.New("rolecreds: provider closed")

// assumeTimeout bounds one AssumeRole call made by a refresh, which runs on
// the provider's own context so that one caller giving up does not fail the
// others waiting on the same refresh.
const assumeTimeout = time.Minute

// AssumeRoleError wraps every failure to assume the role, so that Classify
// recognises it even when it reaches the caller inside a Kinesis client's
// "failed to retrieve credentials" error, and so that it names the role.
type AssumeRoleError struct {
	RoleARN string
	Err     error
}

func (e *AssumeRoleError) Error() string { return "assume role " + e.RoleARN + ": " + e.Err.Error() }
func (e *AssumeRoleError) Unwrap() error { return e.Err }

// New validates cfg and returns a provider of the role's credentials.
//
// It does not use aws.CredentialsCache, which refreshes inside the Retrieve
// that finds the credentials in the expiry window: that caller, and every
// concurrent one, waits for STS, and a failed refresh discards credentials
// that were still valid for minutes. Instead, once the window opens,
// Retrieve starts one refresh in the background and keeps returning the
// current credentials; failures are retried, spaced out, until the
// credentials are within a short guard of expiry. Only then, or before the
// first success, does Retrieve wait for STS, and then it returns the error.
//
// Retrieve is safe for concurrent use. Pass the provider to a client as its
// Credentials option directly: config.WithCredentialsProvider wraps it in an
// aws.CredentialsCache, which would hold credentials until their expiry
// and so undo the early refresh. The provider also implements io.Closer:
// Close cancels a refresh in flight and waits for it.
func New(cfg Config, api AssumeRoleAPI) (aws.CredentialsProvider, error) {
	if api == nil {
		return nil, errors.New("rolecreds: nil AssumeRoleAPI")
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pol, err := SessionPolicy(cfg)
	if err != nil {
		return nil, err
	}
	// stscreds builds the AssumeRoleInput and checks the response; it is
	// called from one refresh at a time, so its lazy defaults never race
	// (and both are set here anyway).
	inner := stscreds.NewAssumeRoleProvider(api, cfg.RoleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = SessionName(cfg.StreamName)
		o.Duration = cfg.Duration
		o.ExternalID = aws.String(cfg.ExternalID)
		o.Policy = aws.String(pol)
		o.Tags = SessionTags(cfg)
	})
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &provider{
		inner:   inner,
		roleARN: cfg.RoleARN,
		window:  cfg.ExpiryWindow,
		guard:   cfg.ExpiryWindow / 4,
		retry:   min(cfg.ExpiryWindow/8, 30*time.Second),
		log:     log.With(slog.String("component", "rolecreds"), slog.String("role_arn", cfg.RoleARN)),
		ctx:     ctx,
		cancel:  cancel,
	}, nil
}

type provider struct {
	inner   aws.CredentialsProvider
	roleARN string
	window  time.Duration // start refreshing this long before expiry
	guard   time.Duration // stop handing out credentials this long before expiry
	retry   time.Duration // spacing of background attempts after a failure
	log     *slog.Logger

	ctx    context.Context // cancelled by Close; parent of every refresh
	cancel context.CancelFunc
	wg     sync.WaitGroup // refresh goroutines

	mu       sync.Mutex
	creds    aws.Credentials
	flight   *flight   // the refresh in progress, nil when none
	retryAt  time.Time // no background attempt before this, after a failure
	failures int       // consecutive failed refreshes, for the recovery log
	closed   bool
}

// flight is one AssumeRole in progress; err is set before done is closed.
type flight struct {
	done chan struct{}
	err  error
}

// Retrieve returns the role's credentials (see New for when it waits).
func (p *provider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return aws.Credentials{}, ErrClosed
	}
	now := time.Now()
	if p.creds.HasKeys() && now.Before(p.creds.Expires.Add(-p.guard)) {
		if !now.Before(p.creds.Expires.Add(-p.window)) && p.flight == nil && !now.Before(p.retryAt) {
			p.start()
		}
		c := p.creds
		p.mu.Unlock()
		return c, nil
	}
	f := p.flight
	if f == nil {
		f = p.start()
	}
	p.mu.Unlock()

	select {
	case <-f.done:
	case <-ctx.Done():
		return aws.Credentials{}, fmt.Errorf("retrieve role credentials: %w", ctx.Err())
	}
	if f.err != nil {
		return aws.Credentials{}, f.err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Returned even if already inside the guard: STS chose that lifetime,
	// and waiting again would only repeat the same call.
	return p.creds, nil
}

// start launches a refresh. Callers hold p.mu and have checked p.closed.
func (p *provider) start() *flight {
	f := &flight{done: make(chan struct{})}
	p.flight = f
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ctx, cancel := context.WithTimeout(p.ctx, assumeTimeout)
		creds, err := p.inner.Retrieve(ctx)
		cancel()

		p.mu.Lock()
		if err != nil {
			f.err = &AssumeRoleError{RoleARN: p.roleARN, Err: err}
			p.retryAt = time.Now().Add(p.retry)
			p.failures++
			p.log.Warn("refresh role credentials", slog.Int("failures", p.failures), slog.Any("error", err))
		} else {
			if p.failures > 0 {
				p.log.Info("role credentials refreshed after failures", slog.Int("failures", p.failures))
			}
			p.creds, p.retryAt, p.failures = creds, time.Time{}, 0
		}
		p.flight = nil
		p.mu.Unlock()
		close(f.done)
	}()
	return f
}

// Close cancels a refresh in flight, waits for it, and makes Retrieve fail
// with ErrClosed from then on.
func (p *provider) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	return nil
}

// ProviderSources reports the credential source for the SDK's user agent.
func (p *provider) ProviderSources() []aws.CredentialSource {
	return []aws.CredentialSource{aws.CredentialSourceSTSAssumeRole}
}
