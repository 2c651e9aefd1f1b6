package docs

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cdcd-dev/cdcd/config"
)

// The Dockerfile is checked here for the rules of a container image that
// matter to cdcd, as a linter would; building and running the image is
// test/localstack's, where a Docker engine answers.

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line  int
	cmd   string   // upper case
	flags []string // leading --flag=value words
	args  string   // the rest
}

// parseDockerfile splits text into instructions, dropping comments and
// parser directives and joining lines that end in a backslash.
func parseDockerfile(text string) []instruction {
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" && cur.Len() == 0 || strings.HasPrefix(line, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, more := strings.CutSuffix(line, `\`); more {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		words := strings.Fields(cur.String())
		cur.Reset()
		if len(words) == 0 {
			continue
		}
		in := instruction{line: start, cmd: strings.ToUpper(words[0])}
		rest := words[1:]
		for len(rest) > 0 && strings.HasPrefix(rest[0], "--") {
			in.flags, rest = append(in.flags, rest[0]), rest[1:]
		}
		in.args = strings.Join(rest, " ")
		out = append(out, in)
	}
	return out
}

// execForm is a JSON array of strings, or nil when args is in shell form.
func execForm(args string) []string {
	var v []string
	if json.Unmarshal([]byte(args), &v) != nil {
		return nil
	}
	return v
}

func flagValue(flags []string, name string) (string, bool) {
	for _, f := range flags {
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

var labelRe = regexp.MustCompile(`([A-Za-z0-9._-]+)=("(?:[^"\\]|\\.)*"|\S+)`)

// lintDockerfile returns each broken rule, with its line.
func lintDockerfile(text, stateDir, healthPort string) []string {
	var problems []string
	bad := func(line int, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("line %d: ", line)+fmt.Sprintf(format, args...))
	}
	ins := parseDockerfile(text)
	lastFrom := -1
	for i, in := range ins {
		if in.cmd == "FROM" {
			lastFrom = i
		}
	}
	if lastFrom < 0 {
		return []string{"no FROM"}
	}
	lintBases(ins, bad)
	final := ins[lastFrom+1:]
	lintFinalStage(final, stateDir, healthPort, bad)
	return problems
}

// lintBases: every base image has a tag or digest, not latest, and files
// come in with COPY, whose sources are known, never ADD.
func lintBases(ins []instruction, bad func(int, string, ...any)) {
	args, stages := map[string]string{}, map[string]bool{}
	for _, in := range ins {
		switch in.cmd {
		case "ARG":
			if k, v, ok := strings.Cut(in.args, "="); ok {
				args[k] = v
			}
		case "ADD":
			bad(in.line, "ADD: use COPY")
		case "FROM":
			words := strings.Fields(in.args)
			image := os.Expand(words[0], func(k string) string { return args[k] })
			name := image[strings.LastIndex(image, "/")+1:]
			if _, tag, ok := strings.Cut(name, ":"); !stages[image] && (!ok && !strings.Contains(image, "@sha256:") || tag == "latest") {
				bad(in.line, "FROM %s: pin a tag other than latest, or a digest", image)
			}
			if len(words) == 3 && strings.EqualFold(words[1], "AS") {
				stages[words[2]] = true
			}
		}
	}
}

// lintFinalStage: the runtime image runs as a user other than root, owns
// its state directory, has no shell to run anything with, and says how to
// check its health and what it listens on.
func lintFinalStage(final []instruction, stateDir, healthPort string, bad func(int, string, ...any)) {
	var user string
	var exposed, volumes, copied []string
	labels := map[string]bool{}
	health := false
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "RUN":
			bad(in.line, "RUN in the runtime stage: distroless has no shell")
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.args)...)
		case "VOLUME":
			volumes = append(volumes, execForm(in.args)...)
		case "LABEL":
			for _, m := range labelRe.FindAllStringSubmatch(in.args, -1) {
				labels[m[1]] = true
			}
		case "COPY":
			words := strings.Fields(in.args)
			dst := words[len(words)-1]
			copied = append(copied, dst)
			if chown, _ := flagValue(in.flags, "chown"); dst == stateDir && (chown == "" || chown != user && user != "") {
				bad(in.line, "COPY to %s: --chown it to the runtime user", stateDir)
			}
		case "ENTRYPOINT", "CMD":
			if execForm(in.args) == nil {
				bad(in.line, "%s in shell form: the image has no shell", in.cmd)
			}
		case "HEALTHCHECK":
			health = true
			lintHealthcheck(in, copied, exposed, healthPort, bad)
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		bad(0, "the runtime stage runs as root: set USER")
	}
	if !health {
		bad(0, "no HEALTHCHECK in the runtime stage")
	}
	if !slices.Contains(exposed, healthPort) && !slices.Contains(exposed, healthPort+"/tcp") {
		bad(0, "EXPOSE does not name %s, the port of the default listen address", healthPort)
	}
	if !slices.Contains(volumes, stateDir) {
		bad(0, "no VOLUME for the state directory %s", stateDir)
	}
	for _, k := range []string{"title", "description", "source", "version", "revision"} {
		if !labels["org.opencontainers.image."+k] {
			bad(0, "no LABEL org.opencontainers.image.%s", k)
		}
	}
}

// lintHealthcheck: exec form, running cdcd health against the port the
// image exposes; copied and exposed are what the stage has so far.
func lintHealthcheck(in instruction, copied, exposed []string, healthPort string, bad func(int, string, ...any)) {
	cmd, ok := strings.CutPrefix(in.args, "CMD ")
	argv := execForm(cmd)
	if !ok || len(argv) < 2 {
		bad(in.line, "HEALTHCHECK: want CMD [\"/cdcd\", \"health\", ...] in exec form: the image has no shell")
		return
	}
	if !slices.Contains(copied, argv[0]) || argv[1] != "health" {
		bad(in.line, "HEALTHCHECK runs %v, not the copied binary's health command", argv)
	}
	if i := slices.Index(argv, "--addr"); i >= 0 && i+1 < len(argv) {
		if _, port, err := net.SplitHostPort(argv[i+1]); err != nil || port != healthPort {
			bad(in.line, "HEALTHCHECK --addr %s: want the port %s", argv[i+1], healthPort)
		}
	}
	if t, ok := flagValue(in.flags, "timeout"); !ok || t == "" {
		bad(in.line, "HEALTHCHECK without --timeout")
	}
}

func lintDefaults(t *testing.T) (stateDir, port string) {
	t.Helper()
	cfg, err := config.Parse("defaults", "")
	if err != nil {
		t.Fatal(err)
	}
	_, port, err = net.SplitHostPort(config.DefaultListen)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.StateDir, port
}

func TestDockerfile(t *testing.T) {
	text, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stateDir, port := lintDefaults(t)
	for _, p := range lintDockerfile(string(text), stateDir, port) {
		t.Errorf("Dockerfile %s", p)
	}
}

// TestDockerfileLint: each rule finds what it is for, so that a clean
// Dockerfile means something.
func TestDockerfileLint(t *testing.T) {
	good, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stateDir, port := lintDefaults(t)
	for _, tc := range []struct{ name, old, new, want string }{
		{"latest base", "static-debian12:nonroot", "static-debian12:latest", "pin a tag"},
		{"untagged base", "static-debian12:nonroot", "static-debian12", "pin a tag"},
		{"root", "USER 65532:65532", "USER root", "runs as root"},
		{"no user", "USER 65532:65532", "", "runs as root"},
		{"shell health check", `CMD ["/cdcd", "health", "--addr", "127.0.0.1:9180"]`, "CMD /cdcd health", "exec form"},
		{"health check elsewhere", `"127.0.0.1:9180"]`, `"127.0.0.1:9443"]`, "want the port 9180"},
		{"no health check", "HEALTHCHECK", "# HEALTHCHECK", "no HEALTHCHECK"},
		{"no expose", "EXPOSE 9180", "EXPOSE 8080", "EXPOSE does not name 9180"},
		{"state not owned", "COPY --from=build --chown=65532:65532 /out/state", "COPY --from=build /out/state", "--chown"},
		{"no volume", `VOLUME ["/var/lib/cdcd"]`, "", "no VOLUME"},
		{"no revision label", "org.opencontainers.image.revision", "org.example.revision", "image.revision"},
		{"shell entrypoint", `ENTRYPOINT ["/cdcd"]`, "ENTRYPOINT /cdcd", "shell form"},
		{"run at runtime", `ENTRYPOINT ["/cdcd"]`, "RUN [\"/cdcd\", \"version\"]\nENTRYPOINT [\"/cdcd\"]", "RUN in the runtime stage"},
		{"add", "COPY go.mod go.sum ./", "ADD go.mod go.sum ./", "use COPY"},
	} {
		text := strings.Replace(string(good), tc.old, tc.new, 1)
		if text == string(good) {
			t.Fatalf("%s: the Dockerfile has no %q", tc.name, tc.old)
		}
		problems := strings.Join(lintDockerfile(text, stateDir, port), "\n")
		if !strings.Contains(problems, tc.want) {
			t.Errorf("%s: problems %q lack %q", tc.name, problems, tc.want)
		}
	}
	// A stage of the file is a base without a tag of its own.
	staged := strings.Replace(string(good), "FROM gcr.io/distroless/static-debian12:nonroot", "FROM build", 1)
	if problems := lintDockerfile(staged, stateDir, port); len(problems) > 0 {
		t.Errorf("FROM an earlier stage: %q", problems)
	}
}
