package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The binary's contract with its callers (compose, scale.sh): the address
// on the first stdout line, then report lines whose total counts the
// envelopes accepted.
func TestRunReportsAddressAndCount(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-report", "20ms"}, pw, io.Discard)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatal("no address line")
	}
	addr := lines.Text()
	body := `{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}` + "\n" + `{"type":"event","length":2}` + "\n{}\n"
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/42/envelope/", strings.NewReader(body))
	req.Header.Set("X-Sentry-Auth", "Sentry sentry_key=0123456789abcdef0123456789abcdef, sentry_version=7")
	req.Header.Set("Content-Type", "application/x-sentry-envelope")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("envelope answered %d", resp.StatusCode)
	}
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "received total=1 unix_ms=") {
			cancel()
			go io.Copy(io.Discard, pr)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatal("no report line with total=1")
}

func TestRunRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-keep", "0"}, {"-delay", "-1s"}, {"extra"}, {"-nope"}, {"-listen", "256.0.0.1:1"}} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
}
