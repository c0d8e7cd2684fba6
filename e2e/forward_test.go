package e2e

import (
	"compress/gzip"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// apiRequest is one request the fake Sentry web API received.
type apiRequest struct {
	method, path, auth, xff string
	body                    []byte
}

// TestSentryCLIReleaseThroughRelay runs the real sentry-cli against the relay
// (SENTRY_URL = the relay): `releases new` and `releases finalize` are not
// ingest routes, so the relay's forward fallback must carry them to the
// upstream with the auth token, extend X-Forwarded-For, and bring the
// answers back for sentry-cli to parse.
func TestSentryCLIReleaseThroughRelay(t *testing.T) {
	cli := sentryCLI(t)

	var (
		mu   sync.Mutex
		seen []apiRequest
	)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, apiRequest{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("X-Forwarded-For"), b})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"version": "1.0.0", "url": nil, "dateCreated": "2026-12-05T00:00:00Z", "dateReleased": nil,
			"lastEvent": nil, "newGroups": 0, "projects": []map[string]string{{"slug": "web", "name": "web"}},
		})
	}))
	t.Cleanup(api.Close)
	p := startRelay(t, t.TempDir(), relayConfig{upstream: api.URL + "/"})

	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli, args...)
		// A clean environment: no ~/.sentryclirc or SENTRY_* of the machine.
		cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + t.TempDir(),
			"SENTRY_URL=" + p.url() + "/", "SENTRY_AUTH_TOKEN=sntrys_e2e_token", "SENTRY_LOG_LEVEL=info"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sentry-cli %s: %v\n%s\nrelay log:\n%s", strings.Join(args, " "), err, out, p.logs())
		}
		return string(out)
	}
	if out := run("releases", "new", "1.0.0", "--org", "acme", "--project", "web"); !strings.Contains(out, "Created release 1.0.0") {
		t.Errorf("releases new said %q", out)
	}
	if out := run("releases", "finalize", "1.0.0", "--org", "acme", "--project", "web"); !strings.Contains(out, "Finalized release 1.0.0") {
		t.Errorf("releases finalize said %q", out)
	}

	mu.Lock()
	defer mu.Unlock()
	var created, finalized bool
	for _, r := range seen {
		switch {
		case r.method == "POST" && r.path == "/api/0/organizations/acme/releases/":
			created = strings.Contains(string(r.body), `"version":"1.0.0"`)
		case r.method == "PUT" && r.path == "/api/0/organizations/acme/releases/1.0.0/":
			finalized = strings.Contains(string(r.body), `"dateReleased"`)
		default:
			continue
		}
		if r.auth != "Bearer sntrys_e2e_token" || r.xff != "127.0.0.1" {
			t.Errorf("%s %s reached the upstream with Authorization %q, X-Forwarded-For %q", r.method, r.path, r.auth, r.xff)
		}
	}
	if !created || !finalized {
		t.Errorf("upstream saw create %v, finalize %v; requests: %+v", created, finalized, seen)
	}
}

// sentryCLI installs @sentry/cli (testdata/cli's lockfile, as the client
// recipes do) into the user cache and returns the sentry-cli binary. Without
// node/npm or the registry it skips — unless CI=true, where it fails.
func sentryCLI(t *testing.T) string {
	t.Helper()
	unavailable := t.Skipf
	if os.Getenv("CI") == "true" {
		unavailable = t.Fatalf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := findOrInstall(ctx, t, "node", "nodejs", "npm"); err != nil {
		unavailable("node: %v", err)
	}
	npm, err := findOrInstall(ctx, t, "npm", "npm")
	if err != nil {
		unavailable("npm: %v", err)
	}
	modules, err := nodeModules(ctx, t, npm, "cli")
	if err != nil {
		unavailable("npm install @sentry/cli: %v", err)
	}
	bin := filepath.Join(modules, ".bin", "sentry-cli")
	if out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput(); err != nil {
		unavailable("sentry-cli --version: %v\n%s", err, out)
	}
	return bin
}

// TestSentryCLISourceMapUploadThroughRelay: `sentry-cli sourcemaps upload`
// with the relay as SENTRY_URL. sentry-cli asks for the chunk-upload
// options, is told the bundle's chunk is missing, uploads it (a multipart,
// gzip-compressed body: the relay must stream it intact) and assembles the
// bundle. The fake upstream checks the chunk's SHA-1 against the checksum
// sentry-cli computed, so a byte changed on the way fails the upload.
func TestSentryCLISourceMapUploadThroughRelay(t *testing.T) {
	cli := sentryCLI(t)

	var (
		mu        sync.Mutex
		chunks    = map[string]bool{} // SHA-1 of every chunk received intact
		assembled bool
		problems  []string
	)
	const org = "/api/0/organizations/acme/"
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer sntrys_e2e_token" || r.Header.Get("X-Forwarded-For") != "127.0.0.1" {
			problems = append(problems, fmt.Sprintf("%s %s: Authorization %q, X-Forwarded-For %q", r.Method, r.URL.Path,
				r.Header.Get("Authorization"), r.Header.Get("X-Forwarded-For")))
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "GET" && r.URL.Path == org+"chunk-upload/":
			_, _ = io.WriteString(w, `{"url":"`+org+`chunk-upload/","chunkSize":8388608,"chunksPerRequest":64,`+
				`"maxFileSize":2147483648,"maxRequestSize":33554432,"concurrency":1,"hashAlgorithm":"sha1",`+
				`"compression":["gzip"],"accept":["artifact_bundles","release_files","sources"]}`)
		case r.Method == "POST" && r.URL.Path == org+"chunk-upload/":
			if err := r.ParseMultipartForm(64 << 20); err != nil {
				problems = append(problems, "chunk upload: "+err.Error())
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			for field, files := range r.MultipartForm.File {
				for _, fh := range files {
					f, err := fh.Open()
					if err != nil {
						problems = append(problems, err.Error())
						continue
					}
					var rd io.Reader = f
					if field == "file_gzip" {
						zr, err := gzip.NewReader(f)
						if err != nil {
							problems = append(problems, "chunk gzip: "+err.Error())
							f.Close()
							continue
						}
						rd = zr
					}
					h := sha1.New()
					_, err = io.Copy(h, rd)
					f.Close()
					if err != nil {
						problems = append(problems, "chunk read: "+err.Error())
						continue
					}
					chunks[hex.EncodeToString(h.Sum(nil))] = true
				}
			}
			_, _ = io.WriteString(w, `{}`)
		case r.Method == "POST" && r.URL.Path == org+"artifactbundle/assemble/":
			var req struct {
				Chunks []string `json:"chunks"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				problems = append(problems, "assemble: "+err.Error())
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			missing := []string{}
			for _, c := range req.Chunks {
				if !chunks[c] {
					missing = append(missing, c)
				}
			}
			state := "ok"
			if len(missing) > 0 {
				state = "not_found"
			} else {
				assembled = len(req.Chunks) > 0
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"state": state, "missingChunks": missing})
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"detail":"not found"}`)
		}
	}))
	t.Cleanup(api.Close)
	p := startRelay(t, t.TempDir(), relayConfig{upstream: api.URL + "/"})

	dist := t.TempDir()
	for name, body := range map[string]string{
		"app.js":     "function hello(){return 42}\n//# sourceMappingURL=app.js.map\n",
		"app.js.map": `{"version":3,"sources":["app.ts"],"names":["hello"],"mappings":"AAAA,SAASA","file":"app.js"}`,
	} {
		if err := os.WriteFile(filepath.Join(dist, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, "sourcemaps", "upload", "--org", "acme", "--project", "web", "--release", "1.0.0", dist)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + t.TempDir(),
		"SENTRY_URL=" + p.url() + "/", "SENTRY_AUTH_TOKEN=sntrys_e2e_token"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sentry-cli sourcemaps upload: %v\n%s\nrelay log:\n%s", err, out, p.logs())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("upstream problems: %q", problems)
	}
	if len(chunks) == 0 || !assembled {
		t.Errorf("upstream got %d chunks, assembled %v; sentry-cli said:\n%s", len(chunks), assembled, out)
	}
}
