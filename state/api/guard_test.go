package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dsql"
	"github.com/aws/aws-sdk-go-v2/service/dsql/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cdcd-dev/cdcd/state"
	"github.com/cdcd-dev/cdcd/test/testpki"
)

const (
	testCluster = "kmabugltfmjdaj2siqr2qbxgju"
	testStream  = "qv3xw2mdbyjbhnxr7pz5kzbsxu"
)

// testView is the one stream the controllers of these tests know.
func testView(status state.Status) StreamView {
	return view(testCluster, testStream, time.Unix(1705318200, 0), status)
}

// oneStream is a controller that answers every call with that stream.
func oneStream() *fakeController {
	one := func(status state.Status) (StreamView, error) { return testView(status), nil }
	return &fakeController{
		createStream: func(context.Context, CreateRequest) (StreamView, error) { return one(state.Creating) },
		getStream:    func(context.Context, string, string) (StreamView, error) { return one(state.Active) },
		listStreams:  func(context.Context, string) ([]StreamView, error) { return []StreamView{testView(state.Active)}, nil },
		deleteStream: func(context.Context, string, string, string) (StreamView, error) { return one(state.Deleting) },
		streams:      func(context.Context) ([]StreamView, error) { return []StreamView{testView(state.Active)}, nil },
	}
}

// serveGuarded serves the control plane behind g, over TLS when g asks for
// it, as the daemon does, and returns its URL and the log it writes.
func serveGuarded(t *testing.T, g Guard) (string, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	h, tc, err := g.Wrap(NewServer(oneStream(), nil, log), log)
	if err != nil {
		t.Fatal(err)
	}
	return testpki.Serve(t, h, tc, log), &logs
}

// sdkClient is NewClient for o, which must not need the AWS chain.
func sdkClient(t *testing.T, o ClientOptions) *dsql.Client {
	t.Helper()
	o.Region = "us-east-1"
	c, err := NewClient(context.Background(), o, func(context.Context, string) (aws.Config, error) {
		t.Fatal("a cdcd endpoint loaded the AWS configuration")
		return aws.Config{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// list calls ListStreams once: the SDK would retry a 5xx answer.
func list(c *dsql.Client) error {
	_, err := c.ListStreams(context.Background(), &dsql.ListStreamsInput{ClusterIdentifier: aws.String(testCluster)},
		func(o *dsql.Options) { o.RetryMaxAttempts = 1 })
	return err
}

// refused checks that err is the answer to a request without valid
// credentials: UnrecognizedClientException, HTTP 401.
func refused(t *testing.T, what string, err error) {
	t.Helper()
	var ae smithy.APIError
	var re *awshttp.ResponseError
	if !errors.As(err, &ae) || ae.ErrorCode() != "UnrecognizedClientException" || !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusUnauthorized {
		t.Errorf("%s: got %v, want UnrecognizedClientException (401)", what, err)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTokenGuard(t *testing.T) {
	ca := testpki.NewCA(t, "cdcd")
	cert, key := ca.Server(t, "server")
	dir := t.TempDir()
	tokenFile, otherFile := filepath.Join(dir, "token"), filepath.Join(dir, "other")
	const token, newToken = "s3cret-token-0123456789", "rotated-token-abcdefghijk"
	writeFile(t, tokenFile, token+"\n")
	writeFile(t, otherFile, "not-the-token-0123456789\n")
	url, logs := serveGuarded(t, Guard{Auth: AuthToken, CertFile: cert, KeyFile: key, TokenFile: tokenFile})

	if err := list(sdkClient(t, ClientOptions{Endpoint: url, CAFile: ca.File, TokenFile: tokenFile})); err != nil {
		t.Fatalf("ListStreams with the token: %v", err)
	}
	refused(t, "no token", list(sdkClient(t, ClientOptions{Endpoint: url, CAFile: ca.File})))
	refused(t, "a wrong token", list(sdkClient(t, ClientOptions{Endpoint: url, CAFile: ca.File, TokenFile: otherFile})))
	if line, err := Health(context.Background(), ClientOptions{Endpoint: url, CAFile: ca.File}, false); err != nil || line != "live: ok" {
		t.Errorf("/healthz without a token: %q, %v", line, err)
	}
	if _, err := Health(context.Background(), ClientOptions{Endpoint: url, CAFile: ca.File}, true); err == nil || !strings.HasPrefix(err.Error(), "UnrecognizedClientException: no token") {
		t.Errorf("/readyz without a token: %v", err)
	}

	// A new token replaces the old one at once, without a restart.
	writeFile(t, tokenFile, newToken)
	if err := os.Chtimes(tokenFile, time.Time{}, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	oldFile := filepath.Join(dir, "old")
	writeFile(t, oldFile, token)
	writeFile(t, otherFile, newToken)
	refused(t, "the old token after rotation", list(sdkClient(t, ClientOptions{Endpoint: url, CAFile: ca.File, TokenFile: oldFile})))
	if err := list(sdkClient(t, ClientOptions{Endpoint: url, CAFile: ca.File, TokenFile: otherFile})); err != nil {
		t.Fatalf("ListStreams with the rotated token: %v", err)
	}

	// A token file that goes away fails closed, logged once.
	if err := os.Remove(tokenFile); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		err := list(sdkClient(t, ClientOptions{Endpoint: url, CAFile: ca.File, TokenFile: otherFile}))
		var ise *types.InternalServerException
		if !errors.As(err, &ise) {
			t.Fatalf("without a token file: %v, want InternalServerException", err)
		}
	}
	if n := strings.Count(logs.String(), "cannot use the control plane's token"); n != 1 {
		t.Errorf("logged the missing token file %d times:\n%s", n, logs)
	}
	for _, secret := range []string{token, newToken} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("the log holds a token:\n%s", logs)
		}
	}
}

func TestMTLSGuard(t *testing.T) {
	ca, stranger := testpki.NewCA(t, "cdcd"), testpki.NewCA(t, "stranger")
	cert, key := ca.Server(t, "server")
	clientCert, clientKey := ca.Client(t, "operator")
	strangerCert, strangerKey := stranger.Client(t, "intruder")
	url, _ := serveGuarded(t, Guard{Auth: AuthMTLS, CertFile: cert, KeyFile: key, ClientCAFile: ca.File})

	if err := list(sdkClient(t, ClientOptions{Endpoint: url, CAFile: ca.File, CertFile: clientCert, KeyFile: clientKey})); err != nil {
		t.Fatalf("ListStreams with a client certificate: %v", err)
	}
	refused(t, "no client certificate", list(sdkClient(t, ClientOptions{Endpoint: url, CAFile: ca.File})))
	// Go's client keeps back a certificate that the server's list of CAs
	// does not name, and is answered as one without a certificate ...
	refused(t, "a certificate of another CA", list(sdkClient(t, ClientOptions{Endpoint: url, CAFile: ca.File, CertFile: strangerCert, KeyFile: strangerKey})))
	// ... while a client that sends it anyway is refused in the handshake.
	if err := sendAnyway(t, url, ca.File, strangerCert, strangerKey); err == nil || !strings.Contains(err.Error(), "tls: unknown certificate authority") {
		t.Errorf("a certificate of another CA, sent: got %v, want the handshake refused", err)
	}
	if err := list(sdkClient(t, ClientOptions{Endpoint: url, CertFile: clientCert, KeyFile: clientKey})); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client that does not trust the server's CA: %v", err)
	}
	if line, err := Health(context.Background(), ClientOptions{Endpoint: url, CAFile: ca.File}, false); err != nil || line != "live: ok" {
		t.Errorf("/healthz without a client certificate: %q, %v", line, err)
	}
	if line, err := Health(context.Background(), ClientOptions{Endpoint: url, CAFile: ca.File, CertFile: clientCert, KeyFile: clientKey}, true); err != nil || line != "ready: 1 stream, ACTIVE" {
		t.Errorf("/readyz with a client certificate: %q, %v", line, err)
	}
}

func TestReadOnly(t *testing.T) {
	url, _ := serveGuarded(t, Guard{Auth: AuthNone, ReadOnly: true})
	c := sdkClient(t, ClientOptions{Endpoint: url})
	ctx := context.Background()
	_, err := c.CreateStream(ctx, &dsql.CreateStreamInput{ClusterIdentifier: aws.String(testCluster), Format: types.StreamFormatJson,
		Ordering: types.StreamOrderingUnordered, TargetDefinition: &types.TargetDefinitionMemberKinesis{Value: types.KinesisTargetDefinition{
			StreamArn: aws.String("arn:aws:kinesis:us-east-1:123456789012:stream/orders"), RoleArn: aws.String("arn:aws:iam::123456789012:role/cdcd")}}})
	var denied *types.AccessDeniedException
	if !errors.As(err, &denied) || !strings.Contains(aws.ToString(denied.Message), "read-only") {
		t.Errorf("CreateStream: got %v, want AccessDeniedException", err)
	}
	_, err = c.DeleteStream(ctx, &dsql.DeleteStreamInput{ClusterIdentifier: aws.String(testCluster), StreamIdentifier: aws.String(testStream)})
	if !errors.As(err, &denied) {
		t.Errorf("DeleteStream: got %v, want AccessDeniedException", err)
	}
	if err := list(c); err != nil {
		t.Errorf("ListStreams: %v", err)
	}
	if _, err := c.GetStream(ctx, &dsql.GetStreamInput{ClusterIdentifier: aws.String(testCluster), StreamIdentifier: aws.String(testStream)}); err != nil {
		t.Errorf("GetStream: %v", err)
	}
}

// TestWrapRefusesBadFiles: what cannot work stops cdcd at start, and the
// error never quotes a token.
func TestWrapRefusesBadFiles(t *testing.T) {
	ca := testpki.NewCA(t, "cdcd")
	cert, key := ca.Server(t, "server")
	dir := t.TempDir()
	short, ctl, notPEM := filepath.Join(dir, "short"), filepath.Join(dir, "ctl"), filepath.Join(dir, "ca.txt")
	writeFile(t, short, "tooshort\n")
	writeFile(t, ctl, "abcdefgh\x01ijklmnopqrs")
	writeFile(t, notPEM, "not a certificate")
	for name, tc := range map[string]struct {
		g    Guard
		want string
	}{
		"missing token file":  {Guard{Auth: AuthToken, TokenFile: filepath.Join(dir, "none")}, "no such file"},
		"short token":         {Guard{Auth: AuthToken, TokenFile: short}, "8 characters; want at least 16"},
		"control character":   {Guard{Auth: AuthToken, TokenFile: ctl}, "control character"},
		"missing key":         {Guard{CertFile: cert, KeyFile: filepath.Join(dir, "none")}, "TLS certificate"},
		"key of another":      {Guard{CertFile: cert, KeyFile: ca.File}, "TLS certificate"},
		"CA file without PEM": {Guard{Auth: AuthMTLS, CertFile: cert, KeyFile: key, ClientCAFile: notPEM}, "no PEM certificate"},
		"mtls without TLS":    {Guard{Auth: AuthMTLS, ClientCAFile: ca.File}, "need TLS"},
		"unknown mode":        {Guard{Auth: "basic"}, "unknown authentication mode"},
	} {
		_, _, err := tc.g.Wrap(http.NotFoundHandler(), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "tooshort") {
			t.Errorf("%s: the error quotes the token: %v", name, err)
		}
	}
}

// TestGuardedClientUsesNoAWSChain: a non-loopback cdcd called with a token
// gets dummy credentials; signing with the AWS chain would need some.
func TestGuardedClientUsesNoAWSChain(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	writeFile(t, token, "0123456789abcdef")
	c := sdkClient(t, ClientOptions{Endpoint: "https://cdcd.internal.example.com:9443", TokenFile: token})
	if creds, err := c.Options().Credentials.Retrieve(context.Background()); err != nil || creds.AccessKeyID != "cdcd" {
		t.Errorf("credentials %q, %v", creds.AccessKeyID, err)
	}
}

// sendAnyway calls GET /healthz over a TLS connection that presents the
// certificate whatever CAs the server asks for, as curl does.
func sendAnyway(t *testing.T, url, caFile, certFile, keyFile string) error {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := parsePool(pem)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }}}}
	resp, err := c.Get(url + "/healthz")
	if err == nil {
		resp.Body.Close()
	}
	return err
}

// TestPlainSDKClient: the recipe of docs/api.md#authentication, the SDK's
// own client with a header and a TLS configuration and nothing of cdcd's,
// reaches a control plane that asks for a token or a client certificate.
func TestPlainSDKClient(t *testing.T) {
	ca := testpki.NewCA(t, "cdcd")
	cert, key := ca.Server(t, "server")
	clientCert, clientKey := ca.Client(t, "operator")
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenFile, "0123456789abcdef-token\n")
	pem, err := os.ReadFile(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := parsePool(pem)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		guard  Guard
		tls    *tls.Config
		header string
	}{
		{Guard{Auth: AuthToken, CertFile: cert, KeyFile: key, TokenFile: tokenFile}, &tls.Config{RootCAs: roots}, "0123456789abcdef-token"},
		{Guard{Auth: AuthMTLS, CertFile: cert, KeyFile: key, ClientCAFile: ca.File}, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}, ""},
	} {
		url, _ := serveGuarded(t, tc.guard)
		c := dsql.New(dsql.Options{Region: "us-east-1", Credentials: aws.AnonymousCredentials{}}, func(o *dsql.Options) {
			o.BaseEndpoint = aws.String(url)
			o.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) { tr.TLSClientConfig = tc.tls })
			if tc.header != "" {
				o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue("X-Cdcd-Token", tc.header))
			}
		})
		if err := list(c); err != nil {
			t.Errorf("%s: %v", tc.guard.Auth, err)
		}
	}
}

// TestTokenStaysHome: a redirect to another host does not carry the token.
func TestTokenStaysHome(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenFile, "0123456789abcdef-home")
	got := make(chan string, 2)
	elsewhere := testpki.Serve(t, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got <- r.Header.Get(TokenHeader) }), nil, nil)
	home := testpki.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get(TokenHeader)
		http.Redirect(w, r, elsewhere+"/healthz", http.StatusFound)
	}), nil, nil)
	if _, err := Health(context.Background(), ClientOptions{Endpoint: home, TokenFile: tokenFile}, false); err != nil {
		t.Fatal(err)
	}
	if h, e := <-got, <-got; h != "0123456789abcdef-home" || e != "" {
		t.Errorf("token sent home %q, elsewhere %q", h, e)
	}
}
