package main

import (
	"fmt"
	"strconv"
	"strings"
)

// parseBytes reads "2GB", "200MB", "64KB" (powers of 1000 for GB/MB/KB,
// of 1024 for GiB/MiB/KiB) or a plain number; "" is 0.
func parseBytes(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("size %q: want a number and a unit like 200MB", s)
			}
			return int64(n * float64(u.mult)), nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a number and a unit like 200MB", s)
	}
	return n, nil
}

// parseCounts reads a comma-separated list of positive counts such as
// "100k,1M" (k and M are 10³ and 10⁶).
func parseCounts(s string) ([]int64, error) {
	var out []int64
	for f := range strings.SplitSeq(s, ",") {
		mult := 1.0
		switch {
		case strings.HasSuffix(f, "k"):
			f, mult = f[:len(f)-1], 1e3
		case strings.HasSuffix(f, "M"):
			f, mult = f[:len(f)-1], 1e6
		}
		n, err := strconv.ParseFloat(f, 64)
		if err != nil || n*mult < 1 {
			return nil, fmt.Errorf("count %q: want a positive number like 5000, 100k or 1M", f)
		}
		out = append(out, int64(n*mult))
	}
	return out, nil
}

// count writes n as parseCounts reads it, shortest first: 100k, 1M, 1500.
func count(n int64) string {
	switch {
	case n >= 1e6 && n%1e6 == 0:
		return fmt.Sprintf("%dM", n/1e6)
	case n >= 1e3 && n%1e3 == 0:
		return fmt.Sprintf("%dk", n/1e3)
	}
	return strconv.FormatInt(n, 10)
}

// human writes a byte count in powers of 1000.
func human(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// rate writes a per-second figure in thousands: 138.5k.
func rate(perSecond float64) string {
	if perSecond >= 1e3 {
		return fmt.Sprintf("%.1fk", perSecond/1e3)
	}
	return fmt.Sprintf("%.0f", perSecond)
}
