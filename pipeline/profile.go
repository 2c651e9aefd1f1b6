package pipeline

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// StartProfiles is `cdcd run --cpuprofile/--memprofile`, for performance
// work (go tool pprof): a CPU profile of the whole run into cpuPath, and a
// heap profile (allocations since start, and memory in use) into heapPath
// at the end; "" leaves either out. Both files are created at once, so a
// wrong path fails the start, and written when stop is called: a run ended
// by SIGKILL leaves them empty.
func StartProfiles(cpuPath, heapPath string) (stop func() error, err error) {
	var cpu, heap *os.File
	profiling := false
	closeAll := func() error {
		var errs []error
		for _, f := range []*os.File{cpu, heap} {
			if f != nil {
				errs = append(errs, f.Close())
			}
		}
		return errors.Join(errs...)
	}
	if cpuPath != "" {
		if cpu, err = os.Create(cpuPath); err == nil {
			err = pprof.StartCPUProfile(cpu)
			profiling = err == nil
		}
	}
	if err == nil && heapPath != "" {
		heap, err = os.Create(heapPath)
	}
	if err != nil {
		if profiling {
			pprof.StopCPUProfile()
		}
		closeAll()
		return nil, fmt.Errorf("profile: %w", err)
	}
	return func() error {
		if profiling {
			pprof.StopCPUProfile()
		}
		if heap != nil {
			// The in-use figures are as of the last collection.
			runtime.GC()
			err = pprof.Lookup("heap").WriteTo(heap, 0)
		}
		return errors.Join(err, closeAll())
	}, nil
}
