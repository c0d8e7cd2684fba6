package telemetry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

var testCounter = metrics.NewCounter(`relay_telemetry_test_events_total{kind="a"}`)

func TestHandlerServesExposition(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "next:"+r.URL.Path)
	})
	srv := httptest.NewServer(Mount(next))
	defer srv.Close()

	testCounter.Set(41)
	testCounter.Inc()

	tests := []struct {
		method, path string
		status       int
		bodyHas      string
		ctype        string
	}{
		{http.MethodGet, "/metrics", 200, `relay_telemetry_test_events_total{kind="a"} 42` + "\n", contentType},
		{http.MethodGet, "/metrics", 200, "# TYPE relay_telemetry_test_events_total counter\n", contentType},
		{http.MethodGet, "/metrics", 200, "\nprocess_resident_memory_bytes ", contentType},
		{http.MethodGet, "/metrics", 200, "\ngo_goroutines ", contentType},
		{http.MethodHead, "/metrics", 200, "", contentType},
		{http.MethodPost, "/metrics", 405, "method not allowed", ""},
		{http.MethodGet, "/metrics/", 418, "next:/metrics/", ""},
		{http.MethodGet, "/api/1/store/", 418, "next:/api/1/store/", ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.ctype != "" && resp.Header.Get("Content-Type") != tc.ctype {
				t.Fatalf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tc.ctype)
			}
			if tc.status == 405 && resp.Header.Get("Allow") != "GET, HEAD" {
				t.Fatalf("Allow %q", resp.Header.Get("Allow"))
			}
			if tc.method == http.MethodHead && len(body) != 0 {
				t.Fatalf("HEAD answered with a body of %d bytes", len(body))
			}
			if !strings.Contains(string(body), tc.bodyHas) {
				t.Fatalf("body lacks %q:\n%.2000s", tc.bodyHas, body)
			}
		})
	}
}
