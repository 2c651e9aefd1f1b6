// Command cdcd streams PostgreSQL changes into Amazon Kinesis Data Streams as
// Aurora DSQL CDC records.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/pipeline"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// usageError marks a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode maps errors to exit statuses in one place: 0 ok, 2 usage, 1 the rest.
func exitCode(err error, stderr io.Writer) int {
	var ue usageError
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "cdcd: %s\n\n%s", ue.msg, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "cdcd: %s\n", err)
		return 1
	}
}

const usage = `usage:
  cdcd run     --config FILE          run every stream in the config
  cdcd check   --config FILE          validate the config (--online: also what each stream's start would find)
  cdcd tail    [flags]                print the records of a Kinesis stream, one JSON line each
  cdcd policy  --config FILE          print the IAM policies cdcd's base identity, its roles and a reader need
  cdcd streams list|get|create|delete  drive the control plane of a running daemon
  cdcd health  [--ready] [--addr HOST:PORT | --config FILE]  exit 0 if the daemon is live (ready)
  cdcd version                        print the version
Run "cdcd COMMAND -h" for a command's flags.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"no command given"}
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		return cmdRun(ctx, rest, stderr)
	case "check":
		return cmdCheck(ctx, rest, stdout, stderr)
	case "tail":
		return cmdTail(ctx, rest, stdout, stderr)
	case "policy":
		return cmdPolicy(ctx, rest, stdout, stderr)
	case "streams":
		return cmdStreams(ctx, rest, stdout, stderr)
	case "health":
		return cmdHealth(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "cdcd", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return context.Canceled // help printed; exit 0
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", stderr)
	path := fs.String("config", "", "configuration file")
	online := fs.Bool("online", false, "also check what starting each stream would find: source settings and grants, role, Kinesis stream, cluster key")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return usageError{"check needs --config FILE"}
	}
	cfg, err := config.Load(*path)
	if err == nil && !*online {
		err = cfg.CheckOffline()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%d clusters, %d streams)\n", *path, len(cfg.Clusters), len(cfg.Streams))
	if *online {
		return checkOnline(ctx, cfg, stdout)
	}
	return nil
}

func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	path := fs.String("config", "", "configuration file")
	listen := fs.String("listen", "", "address to serve on, replacing the config's listen and $"+config.ListenEnv)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to FILE at exit (for go tool pprof)")
	memProfile := fs.String("memprofile", "", "write a heap profile (allocations since start, memory in use) to FILE at exit")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return usageError{"run needs --config FILE"}
	}
	stopProfiles, err := pipeline.StartProfiles(*cpuProfile, *memProfile)
	if err != nil {
		return err
	}
	defer func() {
		if err := stopProfiles(); err != nil {
			fmt.Fprintf(stderr, "cdcd: %v\n", err)
		}
	}()
	cfg, err := config.Load(*path, config.Listen("--listen", *listen))
	if err == nil {
		err = cfg.ResolveAccount(ctx)
	}
	if err != nil {
		return err
	}
	d, err := pipeline.NewDaemon(ctx, cfg, version, cfg.Log.NewLogger(stderr))
	if err != nil {
		return err
	}
	return d.Run(ctx)
}
