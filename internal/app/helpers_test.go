package app

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/config"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func loadConfig(t *testing.T, yml string) *config.Config {
	t.Helper()
	return loadConfigIn(t, t.TempDir(), yml)
}

// loadConfigIn writes yml as dir's config.yml, loads and validates it; for
// tests that keep more files (credentials) in the same folder.
func loadConfigIn(t *testing.T, dir, yml string) *config.Config {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// postUntilAccepted sends one event envelope to the relay on port until
// ingest answers 200: the relay may still be starting.
func postUntilAccepted(t *testing.T, port int, eventID string) {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/api/42/envelope/", port)
	body := `{"event_id":"` + eventID + `"}` + "\n" + `{"type":"event","length":2}` + "\n{}\n"
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("X-Sentry-Auth", "Sentry sentry_key=0123456789abcdef0123456789abcdef, sentry_version=7")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relay on port %d never accepted the envelope (last: %v)", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
