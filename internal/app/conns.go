package app

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// unusedConns tracks the server's connections that have not sent a byte
// yet (http.StateNew), so a shutdown can close them at once.
//
// Why: http.Server.Shutdown waits for a StateNew connection as if it were
// busy until it is 5 s old. Clients open such connections routinely — Go's
// transport dials one for a request that another, freed connection then
// serves, and keeps it — so without this a graceful stop could spend 5 s
// of limits.shutdown_timeout waiting for connections that carry nothing,
// leaving the workers (and the spool hand-back) no time. Closing one loses
// nothing: no request was read from it, so nothing was acknowledged on it.
type unusedConns struct {
	mu sync.Mutex
	m  map[net.Conn]struct{}
	n  atomic.Int64 // len(m), read without mu by track's fast path
}

func newUnusedConns() *unusedConns { return &unusedConns{m: make(map[net.Conn]struct{})} }

// track is the server's ConnState hook.
func (u *unusedConns) track(c net.Conn, s http.ConnState) {
	if s != http.StateNew && u.n.Load() == 0 {
		// Nothing is tracked — the usual case under load, where every
		// kept-alive connection sent its first request long ago — so c is
		// not either: skip the lock, taken twice per request otherwise
		// (StateActive, StateIdle) by every connection of the server.
		// c's own StateNew, if it was tracked, is counted before its
		// serving goroutine starts, so this load sees it.
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if s == http.StateNew {
		u.m[c] = struct{}{}
		u.n.Store(int64(len(u.m)))
		return
	}
	delete(u.m, c)
	u.n.Store(int64(len(u.m)))
}

// closeAll closes every connection that has not sent a byte yet. Called
// after Shutdown has stopped the listeners, so no new one appears.
func (u *unusedConns) closeAll() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for c := range u.m {
		_ = c.Close() // already gone: nothing to do
		delete(u.m, c)
		n++
	}
	u.n.Store(0)
	return n
}
