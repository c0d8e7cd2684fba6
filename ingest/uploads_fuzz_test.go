package ingest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/relayhq/relay/internal/envelope"
)

// FuzzUploadRoutes drives the upload routes with arbitrary paths, content
// types and bodies (multipart forms, compressed dumps): the handler never
// panics, a refusal is a JSON detail with nothing published, and a success
// published exactly one envelope that parses and carries an event id.
func FuzzUploadRoutes(f *testing.F) {
	mp, mpCT := multipartBody(f,
		formPart{field: "sentry", data: `{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}`},
		formPart{field: "upload_file_minidump", filename: "d.dmp", data: string(testMinidump())})
	f.Add("/api/42/minidump/", "application/octet-stream", testMinidump())
	f.Add("/api/42/minidump", "application/x-dmp", gzipped(f, testMinidump()))
	f.Add("/api/42/minidump/", mpCT, mp)
	f.Add("/api/42/events/9ec79c33ec9942ab8353589fcb2e04dc/attachments/", mpCT, mp)
	f.Add("/api/42/unreal/"+testKey+"/", "", []byte("CR1"))
	f.Add("/api/42/security/", "application/csp-report", []byte(chromiumCSP))
	f.Add("/api/42/minidump/", "application/octet-stream", zstded(f, testMinidump()))
	f.Fuzz(func(t *testing.T, path, contentType string, body []byte) {
		pub := &fakePublisher{}
		cfg := testConfig()
		cfg.MaxEnvelopeSize = 1 << 16
		cfg.MaxEventSize = 1 << 14
		cfg.Limits.MaxAttachmentSize = 1 << 16
		cfg.Limits.MaxAttachmentsSize = 1 << 16
		s := New(cfg, pub, nil, testLogger(t))
		req, err := http.NewRequest(http.MethodPost, "http://relay.test/?sentry_key="+testKey, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.URL.Path = path
		req.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		msgs := pub.messages()
		switch w.Code {
		case http.StatusOK, http.StatusCreated:
			if len(msgs) != 1 {
				t.Fatalf("answered %d with %d messages published", w.Code, len(msgs))
			}
			env, err := envelope.Parse(msgs[0].Envelope)
			if err != nil {
				t.Fatalf("published envelope does not parse: %v", err)
			}
			if env.Header.EventID == "" || len(env.Items) == 0 {
				t.Fatalf("published envelope without event id or items: %q", msgs[0].Envelope)
			}
		case http.StatusUnsupportedMediaType: // bare, as Relay answers it
			if len(msgs) != 0 || w.Body.Len() != 0 {
				t.Fatalf("415 with a body or published")
			}
		default:
			if len(msgs) != 0 {
				t.Fatalf("answered %d but published", w.Code)
			}
			var e errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Detail == "" {
				t.Fatalf("refusal %d without a JSON detail: %q", w.Code, w.Body.Bytes())
			}
		}
	})
}
