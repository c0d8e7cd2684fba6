package upstream

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/credentials"
	"github.com/relayhq/relay/internal/fakesentry"
)

var _ Signer = (*credentials.Credentials)(nil)

func testCredentials(t *testing.T) *credentials.Credentials {
	t.Helper()
	c, err := credentials.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Relay signs envelopes over an empty payload when it has credentials
// (processor.rs SendEnvelope::sign = Sign::Optional(RequestSign)), and
// sends its id; without credentials it sends neither.
func TestSendSignsEnvelopes(t *testing.T) {
	creds := testCredentials(t)
	rec := newRecorder(t, nil)
	c := newClient(t, Config{URL: rec.URL, RelayID: creds.ID.String(), Signer: creds})
	if res := c.Send(context.Background(), baseRequest()); res.Class != Accepted {
		t.Fatalf("send: %+v", res)
	}
	plain := newClient(t, Config{URL: rec.URL})
	if res := plain.Send(context.Background(), baseRequest()); res.Class != Accepted {
		t.Fatalf("send: %+v", res)
	}
	got := rec.requests()
	h := got[0].header
	if h.Get("X-Sentry-Relay-Id") != creds.ID.String() {
		t.Errorf("X-Sentry-Relay-Id = %q", h.Get("X-Sentry-Relay-Id"))
	}
	sig := h.Get("X-Sentry-Relay-Signature")
	if err := fakesentry.VerifyRelaySignature(creds.PublicKey, nil, sig, time.Minute, time.Now()); err != nil {
		t.Errorf("envelope signature %q does not verify over an empty payload: %v", sig, err)
	}
	for _, k := range []string{"X-Sentry-Relay-Id", "X-Sentry-Relay-Signature"} {
		if v, ok := got[1].header[k]; ok {
			t.Errorf("without credentials %s = %q, want absent", k, v)
		}
	}
}

func TestQuery(t *testing.T) {
	creds := testCredentials(t)
	const body = `{"relay_id":"x","public_key":"y","version":"1"}`
	rec := newRecorder(t, respond(http.StatusOK, `{"relay_id":"x","token":"t"}`))
	c := newClient(t, Config{URL: rec.URL + "/prefix", RelayID: creds.ID.String(), Signer: creds, Encoding: "zstd"})
	var out struct {
		RelayID string `json:"relay_id"`
		Token   string `json:"token"`
	}
	if err := c.Query(context.Background(), "/api/0/relays/register/challenge/", []byte(body), &out); err != nil {
		t.Fatal(err)
	}
	if out.RelayID != "x" || out.Token != "t" {
		t.Fatalf("decoded %+v", out)
	}
	got := rec.requests()[0]
	if got.method != http.MethodPost || got.path != "/prefix/api/0/relays/register/challenge/" {
		t.Fatalf("%s %s", got.method, got.path)
	}
	// Queries go uncompressed whatever http.encoding says, signed as sent.
	if string(got.body) != body || got.header.Get("Content-Encoding") != "" {
		t.Fatalf("body %q with Content-Encoding %q", got.body, got.header.Get("Content-Encoding"))
	}
	if got.header.Get("Content-Type") != "application/json" || got.header.Get("X-Sentry-Relay-Id") != creds.ID.String() {
		t.Fatalf("headers %v", got.header)
	}
	if err := fakesentry.VerifyRelaySignature(creds.PublicKey, got.body, got.header.Get("X-Sentry-Relay-Signature"), time.Minute, time.Now()); err != nil {
		t.Fatalf("query signature: %v", err)
	}
}

func TestQueryErrors(t *testing.T) {
	creds := testCredentials(t)
	tests := []struct {
		name        string
		handle      func(http.ResponseWriter, *http.Request)
		wantStatus  int
		wantNetwork bool
		wantStop    bool
		wantDetail  string
	}{
		{"relay stop", respond(403, `{"detail":"Relay is not allowed to register","relay":"stop"}`), 403, false, true, "Relay is not allowed to register"},
		{"forbidden without stop", respond(403, `{"detail":"Relay is not allowed to register"}`), 403, false, false, "Relay is not allowed to register"},
		{"stop on another status is not a stop", respond(400, `{"detail":"x","relay":"stop"}`), 400, false, false, "x"},
		{"bad gateway is the network", respond(502, `<html>`), 502, true, false, ""},
		{"gateway timeout is the network", respond(504, ``), 504, true, false, ""},
		{"server error is an answer", respond(500, `{"detail":"boom"}`), 500, false, false, "boom"},
		{"undecodable 200", respond(200, `not json`), 200, false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, tt.handle)
			c := newClient(t, Config{URL: rec.URL, RelayID: creds.ID.String(), Signer: creds})
			var out map[string]any
			err := c.Query(context.Background(), "/api/0/relays/register/challenge/", []byte(`{}`), &out)
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("error %v is not a *QueryError", err)
			}
			if qe.Status != tt.wantStatus || qe.Network() != tt.wantNetwork || qe.Stop != tt.wantStop || qe.Detail != tt.wantDetail {
				t.Fatalf("got status %d network %v stop %v detail %q", qe.Status, qe.Network(), qe.Stop, qe.Detail)
			}
		})
	}

	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c := newClient(t, Config{URL: "http://" + addr, Signer: creds})
		err = c.Query(context.Background(), "/api/0/relays/register/challenge/", []byte(`{}`), nil)
		var qe *QueryError
		if !errors.As(err, &qe) || !qe.Network() || !strings.Contains(err.Error(), "register/challenge") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("no signer", func(t *testing.T) {
		rec := newRecorder(t, nil)
		c := newClient(t, Config{URL: rec.URL})
		if err := c.Query(context.Background(), "/x/", []byte(`{}`), nil); !errors.Is(err, ErrNoSigner) {
			t.Fatalf("got %v", err)
		}
		if n := len(rec.requests()); n != 0 {
			t.Fatalf("%d unsigned requests sent", n)
		}
	})
}
