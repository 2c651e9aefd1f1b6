package localstack_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	"github.com/testcontainers/testcontainers-go/wait"
)

// buildImage builds the repository's Dockerfile with the docker command
// (BuildKit: the Dockerfile mounts caches) and returns its tag, or skips
// without a Docker engine.
func buildImage(t *testing.T) string {
	t.Helper()
	testcontainers.SkipIfProviderIsNotHealthy(t)
	if testing.Short() {
		t.Skip("building the image takes minutes; skipped with -short")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker command to build the image with")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	tag := "cdcd-image-test:" + hex.EncodeToString(b[:])
	build := exec.Command("docker", "build", "--build-arg", "VERSION=image-test", "--build-arg", "REVISION=0123abcd", "-t", tag, "../..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", tag).Run() })
	return tag
}

// TestImage runs the image as it ships: as a user other than root, with its
// state in the volume, its health check passing on the metrics listener,
// and a listen beyond loopback without TLS and authentication refused.
func TestImage(t *testing.T) {
	tag := buildImage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte("listen = \"127.0.0.1:9280\"\nmetrics_listen = \"0.0.0.0:9180\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctr, err := testcontainers.Run(ctx, tag,
		testcontainers.WithFiles(testcontainers.ContainerFile{HostFilePath: cfg, ContainerFilePath: "/etc/cdcd/config.toml", FileMode: 0o644}),
		testcontainers.WithExposedPorts("9180/tcp"),
		testcontainers.WithWaitStrategy(wait.ForHTTP("/readyz").WithPort("9180/tcp")))
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		t.Fatalf("run %s: %v", tag, err)
	}
	info, err := ctr.Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.User != "65532:65532" || info.Config.Labels["org.opencontainers.image.version"] != "image-test" ||
		info.Config.Labels["org.opencontainers.image.revision"] != "0123abcd" || info.Config.Healthcheck == nil {
		t.Errorf("image config: user %q, labels %v, health check %+v", info.Config.User, info.Config.Labels, info.Config.Healthcheck)
	}
	code, out, err := ctr.Exec(ctx, []string{"/cdcd", "health", "--ready", "--config", "/etc/cdcd/config.toml"}, tcexec.Multiplexed())
	if b, _ := io.ReadAll(out); err != nil || code != 0 || strings.TrimSpace(string(b)) != "ready: no streams" {
		t.Errorf("cdcd health --ready in the container: exit %d, %q, %v", code, b, err)
	}
	for {
		st, err := ctr.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Health != nil && st.Health.Status == "healthy" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the container never became healthy: %+v", st.Health)
		case <-time.After(time.Second):
		}
	}

	open, err := testcontainers.Run(ctx, tag,
		testcontainers.WithFiles(testcontainers.ContainerFile{HostFilePath: cfg, ContainerFilePath: "/etc/cdcd/config.toml", FileMode: 0o644}),
		testcontainers.WithEnv(map[string]string{"CDCD_LISTEN": "0.0.0.0:9443"}),
		testcontainers.WithWaitStrategy(wait.ForExit()))
	testcontainers.CleanupContainer(t, open)
	if err != nil {
		t.Fatalf("run %s with CDCD_LISTEN: %v", tag, err)
	}
	st, err := open.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := open.Logs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(logs)
	if st.ExitCode != 1 || !strings.Contains(string(b), "listen (set by CDCD_LISTEN)") {
		t.Errorf("an open listen in the container: exit %d\n%s", st.ExitCode, b)
	}
}
