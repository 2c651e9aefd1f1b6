package soak

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// transitionTable reads the table of docs/lifecycle.md#transitions:
// status → event → next status; an event missing from a row ("–") is
// rejected.
func transitionTable(path string) (map[string]map[string]string, error) {
	header, rows, err := mdTable(path, "## Transitions")
	if err != nil {
		return nil, err
	}
	table := map[string]map[string]string{}
	for _, c := range rows {
		row := map[string]string{}
		for i, to := range c[1:] {
			if to != "–" && i+1 < len(header) {
				row[header[i+1]] = to
			}
		}
		table[c[0]] = row
	}
	return table, nil
}

// mdTable reads the first Markdown table after heading: its header and its
// rows, as cells.
func mdTable(path, heading string) ([]string, [][]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	in := false
	var header []string
	var rows [][]string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "#"):
			in = line == heading
		case !in || !strings.HasPrefix(line, "|"):
			if header != nil {
				return header, rows, nil // the end of the table
			}
		case header == nil:
			header = cells(line)
		case !strings.HasPrefix(line, "|---"):
			rows = append(rows, cells(line))
		}
	}
	if header == nil {
		return nil, nil, fmt.Errorf("%s: no table under %q", path, heading)
	}
	return header, rows, nil
}

// cells splits a Markdown table row, dropping backticks.
func cells(line string) []string {
	parts := strings.Split(strings.Trim(line, "|"), "|")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), "`")
	}
	return parts
}

// transitionLine matches the daemon's log line of a status change (its
// text log format: the stream and cluster, then from, to and event).
var transitionLine = regexp.MustCompile(`\bstream=(\S+) cluster=\S+ from=(\S+) to=(\S+) event=(\S+)`)

// transitions reads every status change the daemons logged, as
// "FROM -event-> TO" by how often, and the changes the table rejects.
func transitions(logs []string, table map[string]map[string]string) (map[string]int, []string) {
	seen := map[string]int{}
	var illegal []string
	for _, l := range logs {
		for line := range strings.Lines(l) {
			m := transitionLine.FindStringSubmatch(line)
			if m == nil {
				if strings.Contains(line, " from=") && strings.Contains(line, " event=") {
					illegal = append(illegal, "a status change the soak cannot read: "+strings.TrimSpace(line))
				}
				continue
			}
			from, to, ev := m[2], m[3], m[4]
			seen[fmt.Sprintf("%s -%s-> %s", from, ev, to)]++
			if want, ok := table[from][ev]; !ok || want != to {
				illegal = append(illegal, fmt.Sprintf("stream %s: %s on %s went to %s; docs/lifecycle.md#transitions: %q",
					m[1], ev, from, to, want))
			}
		}
	}
	return seen, illegal
}

// repoRoot is the repository's root: tests run in their package's
// directory, test/soak.
func repoRoot() string {
	abs, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return filepath.Join("..", "..")
	}
	return abs
}
