package badinput

import (
	"flag"
	"os"
	"testing"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// parallel is how many cases run at once unless -test.parallel says
// otherwise: they mostly wait for servers and retries, so many more than
// the default, the number of CPUs, fit on a 2-core machine.
const parallel = "8"

// TestMain runs the cases in parallel and removes the template of the
// private clusters (testenv.StartCluster) after them.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		if err := flag.Set("test.parallel", parallel); err != nil {
			panic(err)
		}
	}
	code := m.Run()
	testenv.RemoveClusterTemplate()
	os.Exit(code)
}
