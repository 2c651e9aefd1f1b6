package soak

import (
	"bufio"
	"errors"
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
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	var events []string
	table := map[string]map[string]string{}
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == "## Transitions"
		case !in || !strings.HasPrefix(line, "|"):
			if in && len(table) > 0 {
				return table, nil // the end of the table
			}
		case events == nil:
			events = cells(line)[1:]
		case strings.HasPrefix(line, "|---"):
		default:
			c := cells(line)
			row := map[string]string{}
			for i, to := range c[1:] {
				if to != "–" && i < len(events) {
					row[events[i]] = to
				}
			}
			table[c[0]] = row
		}
	}
	if len(table) == 0 {
		return nil, errors.New("no transition table under ## Transitions")
	}
	return table, sc.Err()
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
