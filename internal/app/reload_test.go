package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/config"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A real SIGHUP to this process: logging.level changes for the logger the
// relay was given (and those derived from it), a config that does not
// validate is refused in one line and the level stays, and the process is
// not stopped by the signal.
func TestReloadLogLevel(t *testing.T) {
	dir := t.TempDir()
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("relay:\n  mode: proxy\nlogging:\n  level: info\n  format: json\n")
	cfg, err := config.LoadWithEnv(dir, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	log := cfg.Logging.NewLogger(&out)
	component := log.With("component", "worker")

	rl := newReloader(cfg, log)
	defer rl.stop()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rl.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	waitFor := func(n int, msg string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(out.String(), msg) < n {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log:\n%s", msg, out.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	component.Debug("before")
	write("relay:\n  mode: proxy\nlogging:\n  level: debug\n  format: json\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(1, `"msg":"SIGHUP: config reloaded"`)
	component.Debug("after")

	write("relay:\n  mode: proxy\nlogging:\n  level: loud\n  format: json\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(1, `"msg":"SIGHUP: config reload refused, the running config stays in force"`)
	component.Debug("still debug")

	logs := out.String()
	if strings.Contains(logs, `"msg":"before"`) || !strings.Contains(logs, `"msg":"after"`) || !strings.Contains(logs, `"msg":"still debug"`) {
		t.Errorf("debug lines: want only those after the reload:\n%s", logs)
	}
	if !strings.Contains(logs, `"applied":["logging.level"]`) {
		t.Errorf("the reload did not say what it applied:\n%s", logs)
	}
	if !strings.Contains(logs, `logging.level: \"loud\" is not one of`) {
		t.Errorf("the refusal does not name the problem:\n%s", logs)
	}
}
