package scrub

import (
	"regexp"
	"sync"
)

// reCache memoises compiled user patterns; bounded so hostile configs cannot
// grow it without limit.
type reCache struct {
	mu sync.Mutex
	m  map[string]reResult
}

type reResult struct {
	re  *regexp.Regexp
	err error
}

const reCacheMax = 4096

func newRECache() *reCache { return &reCache{m: map[string]reResult{}} }

func (c *reCache) get(p string) (*regexp.Regexp, error) {
	c.mu.Lock()
	r, ok := c.m[p]
	c.mu.Unlock()
	if ok {
		return r.re, r.err
	}
	re, err := regexp.Compile(p)
	c.mu.Lock()
	if len(c.m) >= reCacheMax {
		clear(c.m)
	}
	c.m[p] = reResult{re, err}
	c.mu.Unlock()
	return re, err
}
