// Command fakesentry runs internal/fakesentry as a process: a stand-in
// Sentry that accepts envelopes (and a managed relay's registration and
// project-config requests), answers as Sentry does and keeps nothing but
// counts and the newest few records. The compose demo (docker-compose.yml)
// uses it as the relays' upstream so `docker compose up` shows the whole
// flow without a Sentry account; the scaling benchmark
// (cmd/relay-load/scale.sh) uses it as an upstream that answers after a
// delay and counts what was delivered.
//
//	fakesentry -listen 0.0.0.0:9000 -report 10s
//	fakesentry -listen 127.0.0.1:0 -delay 200ms -report 1s
//
// It prints the address it listens on as its first line on stdout, then,
// with -report, one line per interval: "received total=N unix_ms=T" (T is
// when N was read, so two lines give an exact rate). Logs go to stderr,
// one line per request at -v, never payloads.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fakesentry:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("fakesentry", flag.ContinueOnError)
	fs.SetOutput(errOut)
	listen := fs.String("listen", "127.0.0.1:9000", "address to listen on (port 0 picks a free one)")
	delay := fs.Duration("delay", 0, "answer each envelope only after this long (a slow upstream)")
	keep := fs.Int("keep", 1000, "newest envelopes and requests kept in memory (the counts cover all)")
	report := fs.Duration("report", 0, "print the count of accepted envelopes this often (0: never)")
	verbose := fs.Bool("v", false, "log one line per request (method, path, status; never payloads)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *keep < 1 || *delay < 0 || *report < 0 {
		return errors.New("-keep must be at least 1, -delay and -report not negative")
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: level}))

	srv, err := start(fakesentry.Options{Listen: *listen, KeepLast: *keep, Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close()
	srv.SetDelay(*delay)
	fmt.Fprintln(out, srv.Addr())
	log.Info("fake sentry listening", "addr", srv.Addr(), "delay", *delay)

	var tick <-chan time.Time
	if *report > 0 {
		t := time.NewTicker(*report)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("fake sentry stopping", "received", srv.Count())
			return nil
		case <-tick:
			fmt.Fprintf(out, "received total=%d unix_ms=%d\n", srv.Count(), time.Now().UnixMilli())
		}
	}
}

// start turns fakesentry.New's panic on a listen failure (it is test
// infrastructure) into an error a command can print.
func start(opts fakesentry.Options) (srv *fakesentry.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return fakesentry.New(opts), nil
}
