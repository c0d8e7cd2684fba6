package ingest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/relayhq/relay/internal/envelope"
)

// FuzzIngest drives the whole handler with arbitrary bodies, encodings, auth
// and paths: it never panics, every refusal is a JSON detail mirrored in
// X-Sentry-Error with nothing published, and whatever is published is a valid
// envelope that was answered 200.
func FuzzIngest(f *testing.F) {
	f.Add("/api/42/envelope/", testAuth, "", validEnvelope)
	f.Add("/api/42/envelope/", "", "", []byte(`{"dsn":"http://`+testKey+`@h/42"}`+"\n{\"type\":\"event\"}\n{}\n"))
	f.Add("/api/42/store/", testAuth, "", []byte(`{"message":"x"}`))
	f.Add("/api/store/", testAuth, "gzip", gzipBytes(f, validEnvelope))
	f.Add("/api/42/envelope/", testAuth, "deflate", []byte{0x78, 0x9c, 0x03, 0x00})
	f.Add("/api/7/envelope/", "Sentry sentry_key="+testKey+", sentry_version=8", "br", []byte{})
	f.Fuzz(func(t *testing.T, path, auth, encoding string, body []byte) {
		pub := &fakePublisher{}
		cfg := testConfig()
		cfg.MaxEnvelopeSize = 1 << 16
		cfg.MaxEventSize = 1 << 14
		s := New(cfg, pub, nil, testLogger(t))
		req, err := http.NewRequest(http.MethodPost, "http://relay.test/", bytes.NewReader(body))
		if err != nil {
			return
		}
		req.URL.Path = path
		req.Header.Set("X-Sentry-Auth", auth)
		req.Header.Set("Content-Encoding", encoding)
		req.RemoteAddr = "192.0.2.1:1234"
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)

		msgs := pub.messages()
		if w.Code != http.StatusOK {
			if len(msgs) != 0 {
				t.Fatalf("status %d but published", w.Code)
			}
			var e errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Detail == "" {
				t.Fatalf("status %d body %q", w.Code, w.Body.Bytes())
			}
			if got := w.Header().Get("X-Sentry-Error"); got != headerSafe(e.Detail) {
				t.Fatalf("X-Sentry-Error %q, detail %q", got, e.Detail)
			}
			return
		}
		for _, m := range msgs {
			if _, err := envelope.Parse(m.Envelope); err != nil {
				t.Fatalf("published an invalid envelope (%v): %q", err, m.Envelope)
			}
			// What the upstream client would refuse to send must never be
			// published (it would end in the dead letters).
			if err := envelope.CheckPublicKey(m.PublicKey); err != nil {
				t.Fatalf("published with key %q: %v", m.PublicKey, err)
			}
			if err := envelope.CheckProjectID(m.ProjectID); err != nil {
				t.Fatalf("published for project %d: %v", m.ProjectID, err)
			}
		}
	})
}
