package fakesentry

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// A fake that runs for days (cmd/fakesentry in the compose demo) must hold
// bounded memory: KeepLast keeps the newest records and Count still counts
// every accepted envelope, so WaitFor goes on working.
func TestKeepLast(t *testing.T) {
	s := newServer(t, Options{KeepLast: 3})
	var ids []string
	for i := range 7 {
		id := fmt.Sprintf("%032x", i+1)
		ids = append(ids, id)
		body := `{"event_id":"` + id + `"}` + "\n" + `{"type":"event","length":2}` + "\n{}\n"
		if status, _, answer := do(t, s.URL(), post(body)); status != 200 {
			t.Fatalf("envelope %d: %d %s", i, status, answer)
		}
	}
	do(t, s.URL(), req{method: "GET", path: "/nowhere"}) // a request that is no envelope
	if n := s.Count(); n != 7 {
		t.Fatalf("Count = %d, want 7 (every accepted envelope, kept or not)", n)
	}
	got := s.Received()
	if len(got) != 3 {
		t.Fatalf("kept %d records, want 3", len(got))
	}
	for i, r := range got {
		if r.EventID != ids[4+i] {
			t.Errorf("kept record %d has event %s, want %s (the newest, in order)", i, r.EventID, ids[4+i])
		}
	}
	reqs := s.Requests()
	if len(reqs) != 3 || reqs[2].Path != "/nowhere" || reqs[0].EventID != ids[5] {
		t.Fatalf("request log %+v, want the last 3 requests", reqs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if recs, err := s.WaitFor(ctx, 7); err != nil || len(recs) != 3 {
		t.Fatalf("WaitFor(7) = %d records, %v", len(recs), err)
	}
	s.Reset()
	if s.Count() != 0 || len(s.Received()) != 0 {
		t.Fatal("Reset kept records")
	}
}

func TestListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := newServer(t, Options{Listen: addr})
	if s.Addr() != addr || !strings.HasSuffix(s.URL(), addr) {
		t.Fatalf("listening on %s (%s), want %s", s.Addr(), s.URL(), addr)
	}
	if status, _, body := do(t, s.URL(), post(envelope)); status != 200 {
		t.Fatalf("envelope: %d %s", status, body)
	}
}
