package filter

import (
	"crypto/sha256"
	"sync"
)

// Cache holds compiled Settings by the SHA-256 of their JSON, so a project's
// settings are compiled once however many envelopes use them, and a
// changed document (a new hash) is compiled afresh without anyone having to
// invalidate anything. A document that fails to compile is cached with its
// error, so a broken config costs one compile, not one per envelope.
//
// The cache is bounded: past max entries the oldest is evicted (documents
// superseded by a config change are never used again, so FIFO suffices).
type Cache struct {
	mu    sync.Mutex
	max   int
	m     map[[sha256.Size]byte]cached
	order [][sha256.Size]byte // insertion order, for eviction
}

type cached struct {
	s   *Settings
	err error
}

// DefaultCacheSize is enough for every project of a large organisation.
const DefaultCacheSize = 4096

// NewCache returns a cache holding at most max compiled documents (max <= 0
// means DefaultCacheSize).
func NewCache(max int) *Cache {
	if max <= 0 {
		max = DefaultCacheSize
	}
	return &Cache{max: max, m: make(map[[sha256.Size]byte]cached)}
}

// Get returns the compiled settings for raw, compiling them on first use;
// fresh reports that this call compiled them (so a caller can log a broken
// document once, not once per envelope). Concurrent first uses of one
// document may compile it twice; both results are equal and one wins.
func (c *Cache) Get(raw []byte) (s *Settings, fresh bool, err error) {
	key := sha256.Sum256(raw)
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return e.s, false, e.err
	}
	s, err = Compile(raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		return e.s, false, e.err
	}
	if len(c.order) >= c.max {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[key] = cached{s, err}
	c.order = append(c.order, key)
	return s, true, err
}

// size returns the number of cached documents.
func (c *Cache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
