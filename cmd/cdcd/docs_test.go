package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// mention is one cdcd command written in a document: `cdcd streams
// list|get --cluster ID` is command streams, subcommands list and get
// (alternatives), and flag cluster.
type mention struct {
	where string // file:line
	cmd   string
	subs  []string
	flags []string
}

var (
	codeSpan = regexp.MustCompile("`([^`\n]+)`")
	// shellBreak ends one command on a line: a pipe, a list, a command
	// substitution, a redirection.
	shellBreak = regexp.MustCompile(`\s\|\s|&&|\|\||;|\$\(|\)|\s>`)
	// comment is a shell or TOML comment: prose, not commands.
	comment  = regexp.MustCompile(`(^|\s)#.*`)
	word     = regexp.MustCompile(`^[a-z]+(\|[a-z]+)*$`)
	flagName = regexp.MustCompile(`^[\[(]?--?([a-z][a-z0-9-]*)`)
)

// mentions finds the cdcd commands in a Markdown document: in fenced
// code blocks, every command line that runs cdcd (also as a path ending
// in bin/cdcd, as in a systemd unit); elsewhere, code spans that start
// with "cdcd ".
func mentions(name, text string) []mention {
	var out []mention
	fenced := false
	for i, line := range strings.Split(text, "\n") {
		where := fmt.Sprintf("%s:%d", name, i+1)
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			for _, part := range shellBreak.Split(comment.ReplaceAllString(line, ""), -1) {
				out = append(out, commands(where, strings.Fields(part))...)
			}
			continue
		}
		for _, span := range codeSpan.FindAllStringSubmatch(line, -1) {
			if s := strings.ReplaceAll(span[1], `\|`, "|"); strings.HasPrefix(s, "cdcd ") {
				out = append(out, commands(where, strings.Fields(shellBreak.Split(s, 2)[0]))...)
			}
		}
	}
	return out
}

// commands reads the cdcd commands among one shell command's words: the
// word after cdcd names the command, a bare word after that a
// subcommand, and words starting with a dash are flags.
func commands(where string, words []string) []mention {
	var out []mention
	for i := 0; i+1 < len(words); i++ {
		if w := words[i]; w != "cdcd" && !strings.HasSuffix(w, "bin/cdcd") || !word.MatchString(words[i+1]) || words[i+1] == "cdcd" {
			continue
		}
		m := mention{where: where, cmd: words[i+1]}
		i += 2
		if i < len(words) && word.MatchString(words[i]) {
			m.subs = strings.Split(words[i], "|")
		}
		for ; i < len(words); i++ {
			if f := flagName.FindStringSubmatch(words[i]); f != nil {
				m.flags = append(m.flags, f[1])
			}
		}
		out = append(out, m)
	}
	return out
}

// cliFlags returns the flags that "cdcd args... -h" lists, or an error if
// the command does not exist.
func cliFlags(args ...string) (map[string]bool, error) {
	var help bytes.Buffer
	err := run(context.Background(), append(args, "-h"), io.Discard, &help)
	var ue usageError
	if errors.As(err, &ue) {
		return nil, err
	}
	flags := map[string]bool{"h": true, "help": true}
	for _, line := range strings.Split(help.String(), "\n") {
		if name, ok := strings.CutPrefix(line, "  -"); ok {
			flags[strings.Fields(name)[0]] = true
		}
	}
	return flags, nil
}

// problems lists what m names that the CLI does not have.
func (m mention) problems() []string {
	var out []string
	subs := m.subs
	if len(subs) > 0 {
		// A command with subcommands names them in the usage it prints
		// when given none.
		usage := fmt.Sprint(run(context.Background(), []string{m.cmd}, io.Discard, io.Discard))
		for _, s := range subs {
			if !strings.Contains(usage, "cdcd "+m.cmd+" "+s+" ") {
				out = append(out, fmt.Sprintf("%s: cdcd %s has no subcommand %s", m.where, m.cmd, s))
			}
		}
	} else if len(m.flags) == 0 {
		// A bare mention (`cdcd streams`) only has to name a command; -h
		// keeps the command from doing anything.
		err := run(context.Background(), []string{m.cmd, "-h"}, io.Discard, io.Discard)
		if err != nil && strings.Contains(err.Error(), "unknown command") {
			out = append(out, fmt.Sprintf("%s: cdcd %s: %v", m.where, m.cmd, err))
		}
		return out
	} else {
		subs = []string{""}
	}
	for _, s := range subs {
		flags, err := cliFlags(slices.DeleteFunc([]string{m.cmd, s}, func(a string) bool { return a == "" })...)
		if err != nil {
			return append(out, fmt.Sprintf("%s: cdcd %s: %v", m.where, m.cmd, err))
		}
		for _, f := range m.flags {
			if !flags[f] {
				out = append(out, fmt.Sprintf("%s: %s has no flag --%s", m.where, strings.TrimSpace("cdcd "+m.cmd+" "+s), f))
			}
		}
	}
	return out
}

// TestDocumentedCommandsExist: every cdcd command, subcommand and flag
// that README.md and docs/*.md write exists in the CLI.
func TestDocumentedCommandsExist(t *testing.T) {
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, path := range append([]string{"../../README.md"}, docs...) {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mentions(strings.TrimPrefix(path, "../../"), string(text)) {
			checked++
			for _, p := range m.problems() {
				t.Error(p)
			}
		}
	}
	if checked < 20 {
		t.Errorf("found only %d cdcd commands in the documents: the parser is broken", checked)
	}
}

// TestDocumentedCommandsCheck: the check above catches a command, a
// subcommand and a flag that do not exist, wherever they are written.
func TestDocumentedCommandsCheck(t *testing.T) {
	doc := "Run `cdcd tail --from-start --no-such-flag` or `cdcd frob`.\n" +
		"```sh\n" +
		"cdcd policy --config c.toml --stream s --only trust | aws iam create-role --role-name r  # cdcd tail --role-name\n" +
		"cdcd streams list|frob --cluster ID --bogus\n" +
		"ExecStart=/usr/local/bin/cdcd run --config /etc/cdcd/config.toml --verbose\n" +
		"```\n"
	var got []string
	for _, m := range mentions("doc.md", doc) {
		got = append(got, m.problems()...)
	}
	want := []string{
		"doc.md:1: cdcd tail has no flag --no-such-flag",
		`doc.md:1: cdcd frob: unknown command "frob"`,
		"doc.md:4: cdcd streams has no subcommand frob",
		"doc.md:4: cdcd streams list has no flag --bogus",
		"doc.md:4: cdcd streams frob has no flag --bogus",
		"doc.md:5: cdcd run has no flag --verbose",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
