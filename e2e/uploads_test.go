package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fakesentry"
)

// A crash reporter's minidump (multipart, gzip-wrapped dump), an unreal crash
// report, a CSP report as Chromium sends it and an attachment upload go
// through the running relay; each reaches the fake Sentry as an envelope with
// the items Relay would make, under the event id the relay answered.
func TestUploadRoutesReachSentry(t *testing.T) {
	up := fakesentry.New(fakesentry.Options{})
	defer up.Close()
	p := startRelay(t, t.TempDir(), relayConfig{upstream: up.URL()})
	base := p.url() + "/api/" + testProject

	// The 32-byte MINIDUMP_HEADER: signature, version, no streams.
	dump := make([]byte, 32)
	copy(dump, "MDMP")
	binary.LittleEndian.PutUint32(dump[4:], 0xa793)
	binary.LittleEndian.PutUint32(dump[12:], 32)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(dump)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}

	post := func(url, contentType string, body []byte) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentType)
		resp, err := sendClient.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	auth := "?sentry_key=" + testKey

	// Minidump, as Crashpad / Electron upload it.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("sentry", `{"release":"desktop@3.1"}`)
	fw, _ := mw.CreateFormFile("upload_file_minidump", "crash.dmp.gz")
	_, _ = fw.Write(gz.Bytes())
	fw, _ = mw.CreateFormFile("log", "app.log")
	_, _ = fw.Write([]byte("booted\n"))
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	st, dumpID := post(base+"/minidump/"+auth, mw.FormDataContentType(), mp.Bytes())
	if st != 200 {
		t.Fatalf("minidump: %d %s", st, dumpID)
	}

	st, unrealID := post(base+"/unreal/"+testKey+"/?UserID=player-1", "application/octet-stream", []byte("CR1\x00ue4 crash bytes"))
	if st != 200 {
		t.Fatalf("unreal: %d %s", st, unrealID)
	}

	const csp = `{"csp-report":{"document-uri":"https://example.com/","referrer":"","violated-directive":"img-src","effective-directive":"img-src","original-policy":"img-src 'self'","disposition":"enforce","blocked-uri":"https://tracker.example/p.gif","status-code":200,"script-sample":""}}`
	if st, b := post(base+"/security/"+auth+"&sentry_release=web%402", "application/csp-report", []byte(csp)); st != 200 || b != "" {
		t.Fatalf("security: %d %q", st, b)
	}

	const attachEvent = "6c0bd7a3a5a447e6b58f0e4bd2a25a1d"
	mp.Reset()
	mw = multipart.NewWriter(&mp)
	fw, _ = mw.CreateFormFile("file", "notes.txt")
	_, _ = fw.Write([]byte("attached later"))
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	if st, b := post(base+"/events/"+attachEvent+"/attachments/"+auth, mw.FormDataContentType(), mp.Bytes()); st != 201 {
		t.Fatalf("attachments: %d %q", st, b)
	}

	byType := func(typ string) (fakesentry.Received, fakesentry.Item, bool) {
		for _, r := range up.Received() {
			for _, it := range r.Items {
				if it.Type == typ {
					return r, it, true
				}
			}
		}
		return fakesentry.Received{}, fakesentry.Item{}, false
	}
	deadline := time.Now().Add(20 * time.Second)
	for up.Count() < 4 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if up.Count() < 4 {
		t.Fatalf("the fake Sentry received %d envelopes, want 4\n%s", up.Count(), p.logs())
	}
	header := func(it fakesentry.Item, key string) string {
		var h map[string]any
		if err := json.Unmarshal(it.Header, &h); err != nil {
			t.Fatalf("item header %s: %v", it.Header, err)
		}
		s, _ := h[key].(string)
		return s
	}

	// Minidump: the decoded dump, its filename without .gz, the other file
	// and the form fields, under the event id the relay answered.
	var (
		r  fakesentry.Received
		it fakesentry.Item
		ok bool
	)
	for _, rr := range up.Received() {
		for _, i := range rr.Items {
			if header(i, "attachment_type") == "event.minidump" {
				r, it, ok = rr, i, true
			}
		}
	}
	if !ok || header(it, "attachment_type") != "event.minidump" {
		t.Fatal("no event.minidump attachment upstream")
	}
	if !bytes.Equal(it.Payload, dump) || header(it, "filename") != "crash.dmp" {
		t.Errorf("minidump item: filename %q, payload %q", header(it, "filename"), it.Payload)
	}
	if strings.ReplaceAll(dumpID, "-", "") != r.EventID {
		t.Errorf("minidump answered %q, upstream event id %q", dumpID, r.EventID)
	}
	var types []string
	for _, i := range r.Items {
		types = append(types, i.Type+"/"+header(i, "attachment_type"))
	}
	if got := strings.Join(types, " "); got != "attachment/event.minidump attachment/event.attachment form_data/" {
		t.Errorf("minidump envelope items %s", got)
	}

	r, it, ok = byType("unreal_report")
	if !ok || string(it.Payload) != "CR1\x00ue4 crash bytes" || strings.ReplaceAll(unrealID, "-", "") != r.EventID {
		t.Errorf("unreal: found %v, payload %q, answered %q for %q", ok, it.Payload, unrealID, r.EventID)
	}
	if !bytes.Contains(r.EnvelopeHeader, []byte(`"unreal_user_id":"player-1"`)) {
		t.Errorf("unreal envelope header %s", r.EnvelopeHeader)
	}

	_, it, ok = byType("raw_security")
	if !ok || string(it.Payload) != csp || header(it, "sentry_release") != "web@2" {
		t.Errorf("security: found %v, header %s, payload %q", ok, it.Header, it.Payload)
	}

	found := false
	for _, rr := range up.Received() {
		if rr.EventID != attachEvent {
			continue
		}
		found = true
		if len(rr.Items) != 1 || string(rr.Items[0].Payload) != "attached later" || header(rr.Items[0], "filename") != "notes.txt" {
			t.Errorf("attachment envelope items %+v", rr.Items)
		}
	}
	if !found {
		t.Error("no envelope for the attachment upload's event upstream")
	}
}

// An upload the relay answered is durable like an envelope: minidumps
// acknowledged while Sentry is down, the relay killed with SIGKILL right
// after the answers, reach Sentry once it is back and the relay restarted.
func TestAcknowledgedUploadsSurviveKill9(t *testing.T) {
	up, dir, rc, p := startRestartable(t)
	up.Down()
	dump := make([]byte, 32)
	copy(dump, "MDMP")
	var want []string
	for i := 0; i < 5; i++ {
		req, err := http.NewRequest(http.MethodPost, p.url()+"/api/"+testProject+"/minidump/?sentry_key="+testKey, bytes.NewReader(dump))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-dmp")
		resp, err := sendClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("minidump %d: %d %s", i, resp.StatusCode, b)
		}
		want = append(want, strings.ReplaceAll(string(b), "-", ""))
	}
	p.kill9()

	if err := up.Up(); err != nil {
		t.Fatal(err)
	}
	p2 := startRelay(t, dir, rc)
	waitDelivered(t, up.EventIDs, want, 60*time.Second)
	if err := p2.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}
