package envelope

import "sync"

// dsnCache remembers valid DSNs already parsed. Every envelope a real SDK
// sends carries its DSN in the header, the same string each time, and
// parsing it with net/url costs several allocations and ~1 µs per request;
// a hit costs a map lookup keyed by the header's bytes, which allocates
// nothing, and hands back the string kept with the entry. Only valid DSNs
// are kept. Bounded: emptied when full, so many distinct DSNs (a tunnel for
// many projects, or junk) cost what they cost without it and no more memory
// than dsnCacheMax entries.
var dsnCache = struct {
	sync.RWMutex
	m map[string]dsnEntry
}{m: make(map[string]dsnEntry)}

// dsnCacheMax bounds the cache; a relay serves far fewer DSNs than this.
const dsnCacheMax = 4096

type dsnEntry struct {
	raw string // the DSN as written, the map's key
	dsn DSN
}

// ParseDSNCached is ParseDSN with the cache above: for the DSN of an
// envelope header or a tunnel request, parsed over and over.
func ParseDSNCached(s string) (DSN, error) {
	if e, ok := lookupDSN(s); ok {
		return e.dsn, nil
	}
	d, err := ParseDSN(s)
	if err != nil {
		return DSN{}, err
	}
	rememberDSN(s, d)
	return d, nil
}

// parseDSNBytes is ParseDSNCached for the unescaped bytes of a JSON string:
// on a hit it returns the cached string and allocates nothing.
func parseDSNBytes(raw []byte) (string, DSN, error) {
	dsnCache.RLock()
	e, ok := dsnCache.m[string(raw)] // no allocation: the compiler converts for the lookup only
	dsnCache.RUnlock()
	if ok {
		return e.raw, e.dsn, nil
	}
	s := string(raw)
	d, err := ParseDSN(s)
	if err != nil {
		return "", DSN{}, err
	}
	rememberDSN(s, d)
	return s, d, nil
}

func lookupDSN(s string) (dsnEntry, bool) {
	dsnCache.RLock()
	e, ok := dsnCache.m[s]
	dsnCache.RUnlock()
	return e, ok
}

func rememberDSN(s string, d DSN) {
	dsnCache.Lock()
	if len(dsnCache.m) >= dsnCacheMax {
		clear(dsnCache.m)
	}
	dsnCache.m[s] = dsnEntry{raw: s, dsn: d}
	dsnCache.Unlock()
}
