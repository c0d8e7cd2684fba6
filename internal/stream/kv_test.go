package stream

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// The bucket holds what was put, answers nil for what was not, survives the
// embedded server's restart, and a second bind to it (another process of the
// deployment) sees the same values.
func TestKeyValueSharedAndDurable(t *testing.T) {
	cfg := testConfig(t)
	c := openTest(t, cfg)
	ctx := ctxT(t, 20*time.Second)
	kv, err := c.KeyValue(ctx, "relay_test_kv", time.Hour)
	if err != nil {
		t.Fatalf("KeyValue: %v", err)
	}
	if v, err := kv.Get(ctx, "absent"); err != nil || v != nil {
		t.Fatalf("Get(absent) = %q, %v; want nil, nil", v, err)
	}
	if err := kv.Put(ctx, "k1", []byte("v1")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	again, err := c.KeyValue(ctx, "relay_test_kv", time.Hour)
	if err != nil {
		t.Fatalf("KeyValue (second bind): %v", err)
	}
	if v, err := again.Get(ctx, "k1"); err != nil || string(v) != "v1" {
		t.Fatalf("Get(k1) via second bind = %q, %v", v, err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var logs lockedBuffer
	c2, err := Open(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer c2.Close()
	if strings.Contains(logs.String(), "another stream") {
		t.Errorf("the bucket's stream was reported as stranded envelopes:\n%s", logs.String())
	}
	kv2, err := c2.KeyValue(ctx, "relay_test_kv", time.Hour)
	if err != nil {
		t.Fatalf("KeyValue after restart: %v", err)
	}
	if v, err := kv2.Get(ctx, "k1"); err != nil || string(v) != "v1" {
		t.Fatalf("Get(k1) after restart = %q, %v", v, err)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Watch delivers what the bucket holds before it returns, then every later
// put and delete, including those made through another bind of the bucket
// (another relay process).
func TestKeyValueWatch(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := ctxT(t, 20*time.Second)
	kv, err := c.KeyValue(ctx, "relay_test_watch", time.Hour)
	if err != nil {
		t.Fatalf("KeyValue: %v", err)
	}
	if err := kv.Put(ctx, "before", []byte("b")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	var mu sync.Mutex
	seen := map[string]string{}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	if err := kv.Watch(wctx, func(k string, v []byte) {
		mu.Lock()
		defer mu.Unlock()
		if v == nil {
			delete(seen, k)
			return
		}
		seen[k] = string(v)
	}); err != nil {
		t.Fatalf("Watch: %v", err)
	}
	mu.Lock()
	if seen["before"] != "b" {
		t.Fatalf("after Watch returned: %v; want before=b already delivered", seen)
	}
	mu.Unlock()
	other, err := c.KeyValue(ctx, "relay_test_watch", time.Hour)
	if err != nil {
		t.Fatalf("KeyValue (second bind): %v", err)
	}
	if err := other.Put(ctx, "after", []byte("a")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := other.kv.Delete(ctx, "before"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := len(seen) == 1 && seen["after"] == "a"
		snapshot := fmt.Sprint(seen)
		mu.Unlock()
		if got {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("watch saw %s; want map[after:a]", snapshot)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
