package capture_test

import (
	"os"
	"testing"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// TestMain removes the template of the private clusters
// (testenv.StartCluster) after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveClusterTemplate()
	os.Exit(code)
}
