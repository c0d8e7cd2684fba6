package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxReport bounds the report a client reads: an hour of history is about
// 60 KiB; anything far larger is not a relay answering.
const maxReport = 4 << 20

// Fetch reads the report of the relay at base (http://host:port).
func Fetch(ctx context.Context, client *http.Client, base string) (*Report, error) {
	u, err := endpoint(base, JSONPath)
	if err != nil {
		return nil, err
	}
	body, code, err := get(ctx, client, u, maxReport)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s answered %d: %s", u, code, firstLine(body))
	}
	var r Report
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%s: not a relay status report: %w", u, err)
	}
	return &r, nil
}

// Health modes and the endpoints of Sentry Relay's health checks, which
// ingest serves.
const (
	HealthLive  = "live"
	HealthReady = "ready"
)

var healthPaths = map[string]string{
	HealthLive:  "/api/relay/healthcheck/live/",
	HealthReady: "/api/relay/healthcheck/ready/",
}

// ErrUnhealthy wraps the answer of a relay that answered but is not
// healthy (as opposed to one that did not answer).
var ErrUnhealthy = errors.New("unhealthy")

// Health asks the relay at base whether it is live or ready. It returns nil
// when healthy, an error wrapping ErrUnhealthy with the relay's reason when
// it answered otherwise, and another error when it did not answer.
func Health(ctx context.Context, client *http.Client, base, mode string) error {
	p, ok := healthPaths[mode]
	if !ok {
		return fmt.Errorf("health check mode %q: want %s or %s", mode, HealthLive, HealthReady)
	}
	u, err := endpoint(base, p)
	if err != nil {
		return err
	}
	body, code, err := get(ctx, client, u, 64<<10)
	if err != nil {
		return err
	}
	if code == http.StatusOK {
		return nil
	}
	why := firstLine(body)
	var detail struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &detail) == nil && detail.Detail != "" {
		why = detail.Detail
	}
	if why == "" {
		why = http.StatusText(code)
	}
	return fmt.Errorf("%w: %s answered %d: %s", ErrUnhealthy, u, code, why)
}

// endpoint joins base (a URL, or host:port) and path.
func endpoint(base, path string) (string, error) {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("relay address %q: want http://host:port or host:port", base)
	}
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

func get(ctx context.Context, client *http.Client, u string, limit int64) ([]byte, int, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	res, err := client.Do(req)
	if err != nil {
		var ue *url.Error // "Get <url>: …": the URL is said once, below
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, 0, fmt.Errorf("no relay answers at %s: %w", u, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: reading the answer: %w", u, err)
	}
	if int64(len(body)) > limit {
		return nil, 0, fmt.Errorf("%s: answer larger than %d bytes: not a relay", u, limit)
	}
	return body, res.StatusCode, nil
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
