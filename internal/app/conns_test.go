package app

import (
	"errors"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// unusedConns through the states net/http reports: a connection is tracked
// from StateNew until its first other state, whichever order connections
// interleave in; closeAll closes exactly the ones still tracked. The fast
// path (nothing tracked: no lock) must not lose a connection tracked since.
func TestUnusedConns(t *testing.T) {
	pipe := func() net.Conn {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return a
	}
	u := newUnusedConns()
	busy, idle, lingering := pipe(), pipe(), pipe()

	steps := []struct {
		c       net.Conn
		s       http.ConnState
		tracked int
	}{
		{busy, http.StateNew, 1},
		{busy, http.StateActive, 0},
		{busy, http.StateIdle, 0}, // the fast path: nothing tracked
		{busy, http.StateActive, 0},
		{idle, http.StateNew, 1},
		{busy, http.StateIdle, 1}, // the slow path for a connection not tracked
		{lingering, http.StateNew, 2},
		{idle, http.StateActive, 1},
		{idle, http.StateClosed, 1},
	}
	for i, st := range steps {
		u.track(st.c, st.s)
		if got := len(u.m); got != st.tracked || u.n.Load() != int64(got) {
			t.Fatalf("step %d (%v): %d tracked (count %d), want %d", i, st.s, got, u.n.Load(), st.tracked)
		}
	}
	if n := u.closeAll(); n != 1 || u.n.Load() != 0 {
		t.Fatalf("closeAll closed %d (count after %d), want 1", n, u.n.Load())
	}
	// A net.Pipe write with nobody reading: a closed end fails at once, an
	// open one waits for its deadline.
	open := func(c net.Conn) bool {
		_ = c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := c.Write([]byte("x"))
		return errors.Is(err, os.ErrDeadlineExceeded)
	}
	if open(lingering) {
		t.Fatal("the never-used connection is still open")
	}
	if !open(busy) || !open(idle) {
		t.Fatal("closeAll closed a connection that had been used")
	}
	u.track(pipe(), http.StateNew) // tracked again after closeAll
	if u.n.Load() != 1 {
		t.Fatalf("count %d after a new connection, want 1", u.n.Load())
	}
}
