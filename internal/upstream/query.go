package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Signer signs request bodies in Sentry Relay's X-Sentry-Relay-Signature
// format (relay-protocol.md §7.2); *credentials.Credentials is one.
type Signer interface {
	Sign(data []byte, t time.Time) string
}

// maxQueryResponse bounds a query's response body: Relay's
// limits.max_api_payload_size (20 MiB). A project-config batch is the
// largest answer the upstream gives.
const maxQueryResponse = 20 << 20

// ErrNoSigner is returned by Query on a Client without a Signer: the
// upstream API for relays only takes signed requests (Relay's
// NoCredentials).
var ErrNoSigner = errors.New("upstream: signed query without credentials")

// QueryError is how a Query failed once the request was built.
type QueryError struct {
	Path   string
	Status int // HTTP status; 0 when no response was received
	// Detail is the "detail" of a JSON error body, bounded; "" otherwise.
	Detail string
	// Stop is true for a 403 whose JSON body carries "relay": "stop": the
	// upstream denies this relay for good and it must stop asking (Relay's
	// RelayErrorAction::Stop).
	Stop bool
	Err  error // the transport's, the context's or the decoder's error, if any
}

func (e *QueryError) Error() string {
	switch {
	case e.Status == 0:
		return fmt.Sprintf("upstream: POST %s: %v", e.Path, e.Err)
	case e.Err != nil:
		return fmt.Sprintf("upstream: POST %s: status %d: %v", e.Path, e.Status, e.Err)
	default:
		return fmt.Sprintf("upstream: POST %s: status %d%s", e.Path, e.Status, detailSuffix(e.Detail))
	}
}

func (e *QueryError) Unwrap() error { return e.Err }

// Network reports whether the failure says nothing about the request: no
// answer at all, or a gateway's 502/503/504 (Relay's is_network_error).
// Anything else is the upstream's answer to this request.
func (e *QueryError) Network() bool {
	return e.Status == 0 || (e.Status >= 502 && e.Status <= 504)
}

// Query posts a signed JSON request to one of the upstream's relay
// endpoints (path such as "/api/0/relays/register/challenge/") and decodes
// the 2xx answer's JSON into out (nil: the body is discarded). body is sent
// uncompressed, as Relay sends queries, and signed as sent. It never
// retries; failures are *QueryError, or ErrNoSigner.
func (c *Client) Query(ctx context.Context, path string, body []byte, out any) error {
	if c.cfg.Signer == nil {
		return ErrNoSigner
	}
	url := c.base + path
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return &QueryError{Path: path, Err: fmt.Errorf("build request: %w", err)}
	}
	h := req.Header
	h["Content-Type"] = []string{"application/json"}
	h["User-Agent"] = []string{""}
	if c.cfg.RelayID != "" {
		h["X-Sentry-Relay-Id"] = []string{c.cfg.RelayID}
	}
	h["X-Sentry-Relay-Signature"] = []string{c.cfg.Signer.Sign(body, time.Now())}
	resp, err := c.http.Do(req)
	if err != nil {
		queryCounter(0).Inc()
		return &QueryError{Path: path, Err: err}
	}
	// As for envelopes: the body is read under its own deadline.
	bodyTimer := time.AfterFunc(c.cfg.Timeout, cancel)
	defer bodyTimer.Stop()
	queryCounter(resp.StatusCode).Inc()
	defer drain(resp.Body)
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxQueryResponse+1))
	if err != nil {
		return &QueryError{Path: path, Status: resp.StatusCode, Err: fmt.Errorf("read response: %w", err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		qe := &QueryError{Path: path, Status: resp.StatusCode}
		var e struct {
			Detail json.RawMessage `json:"detail"`
			Relay  string          `json:"relay"`
		}
		if json.Unmarshal(data, &e) == nil {
			var d string
			if json.Unmarshal(e.Detail, &d) != nil {
				d = string(e.Detail)
			}
			if len(d) > maxDetail {
				d = d[:maxDetail] + "…"
			}
			qe.Detail = d
			qe.Stop = resp.StatusCode == http.StatusForbidden && e.Relay == "stop"
		}
		return qe
	}
	if len(data) > maxQueryResponse {
		return &QueryError{Path: path, Status: resp.StatusCode, Err: errors.New("response larger than " + strconv.Itoa(maxQueryResponse) + " bytes")}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &QueryError{Path: path, Status: resp.StatusCode, Err: fmt.Errorf("decode response: %w", err)}
	}
	return nil
}

// Queries by result: answered 2xx, answered otherwise, or no usable answer
// (network error, 502-504).
var (
	queriesOK       = metrics.NewCounter(`relay_upstream_queries_total{result="ok"}`)
	queriesRejected = metrics.NewCounter(`relay_upstream_queries_total{result="rejected"}`)
	queriesNetwork  = metrics.NewCounter(`relay_upstream_queries_total{result="network"}`)
)

func queryCounter(status int) *metrics.Counter {
	switch {
	case status >= 200 && status <= 299:
		return queriesOK
	case (&QueryError{Status: status}).Network():
		return queriesNetwork
	default:
		return queriesRejected
	}
}
