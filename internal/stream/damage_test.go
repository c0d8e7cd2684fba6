package stream

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// storeFiles names the files of the stream in an embedded store.
type storeFiles struct{ streamDir string }

func (s storeFiles) path(p ...string) string {
	return filepath.Join(append([]string{s.streamDir}, p...)...)
}

// TestOpenDamagedStore damages a store that holds messages and checks that
// Open either fails with an error within a bound, or opens a usable stream
// that still has every message the damage did not touch — never hangs, never
// silently starts empty.
func TestOpenDamagedStore(t *testing.T) {
	const total = 40
	tests := []struct {
		name string
		// damage changes the store; it returns the byte ranges of 1.blk it
		// destroyed (messages overlapping them may be lost), or nil.
		damage func(t *testing.T, s storeFiles) (lostFrom, lostTo int64)
		// mustFail: Open must return an error (recovering would be a guess).
		mustFail bool
	}{
		{"truncated block", func(t *testing.T, s storeFiles) (int64, int64) {
			n := fileSize(t, s.path("msgs", "1.blk"))
			cut := n * 6 / 10
			truncate(t, s.path("msgs", "1.blk"), cut)
			return cut, n
		}, false},
		{"block truncated to zero", func(t *testing.T, s storeFiles) (int64, int64) {
			n := fileSize(t, s.path("msgs", "1.blk"))
			truncate(t, s.path("msgs", "1.blk"), 0)
			return 0, n
		}, false},
		{"garbage inside block", func(t *testing.T, s storeFiles) (int64, int64) {
			n := fileSize(t, s.path("msgs", "1.blk"))
			from, to := n/2, n/2+100
			overwrite(t, s.path("msgs", "1.blk"), from, bytes.Repeat([]byte{0xA5}, int(to-from)))
			// nats-server keeps a block's records up to the first one that
			// fails its checksum and drops the rest of that block: record
			// boundaries after it cannot be trusted. So the loss runs to the
			// block's end, not just to the end of the garbage.
			return from, n
		}, false},
		{"junk files in stream and msgs dirs", func(t *testing.T, s storeFiles) (int64, int64) {
			write(t, s.path("junk"), []byte("not nats data\x00\xff"))
			write(t, s.path("msgs", "junk.tmp"), bytes.Repeat([]byte{0xff}, 4096))
			write(t, s.path("msgs", "99.blk"), bytes.Repeat([]byte{0x5a}, 4096))
			return -1, -1
		}, false},
		{"junk index", func(t *testing.T, s storeFiles) (int64, int64) {
			write(t, s.path("msgs", "index.db"), bytes.Repeat([]byte{0x17}, 120))
			return -1, -1
		}, false},
		{"junk consumer state", func(t *testing.T, s storeFiles) (int64, int64) {
			write(t, s.path("obs", "workers", "o.dat"), bytes.Repeat([]byte{0x17}, 64))
			return -1, -1
		}, false},
		{"junk stream metadata", func(t *testing.T, s storeFiles) (int64, int64) {
			write(t, s.path("meta.inf"), []byte("{not json"))
			return -1, -1
		}, true},
		{"stream metadata checksum missing", func(t *testing.T, s storeFiles) (int64, int64) {
			// nats-server does not load a stream without meta.sum.
			if err := os.Remove(s.path("meta.sum")); err != nil {
				t.Fatal(err)
			}
			return -1, -1
		}, true},
		{"junk stream directory beside ours", func(t *testing.T, s storeFiles) (int64, int64) {
			junk := filepath.Join(filepath.Dir(s.streamDir), "JUNK")
			if err := os.MkdirAll(filepath.Join(junk, "msgs"), 0o700); err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(junk, "meta.inf"), []byte("\x00\x01garbage"))
			write(t, filepath.Join(junk, "msgs", "1.blk"), bytes.Repeat([]byte{1}, 100))
			return -1, -1
		}, false},
		{"junk file where the stream directory goes", func(t *testing.T, s storeFiles) (int64, int64) {
			write(t, filepath.Join(filepath.Dir(s.streamDir), "stray-file"), []byte("junk"))
			return -1, -1
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			want := make([]*Message, total)
			func() {
				c, err := Open(ctxT(t, 30*time.Second), cfg, testLog(t))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := c.Consumer(ctxT(t, 5*time.Second), "workers"); err != nil {
					t.Fatal(err)
				}
				publishN(t, c, 0, total)
				for i := range want {
					want[i] = msgN(i)
				}
			}()
			sf := storeFiles{streamDir: filepath.Join(cfg.StoreDir, "jetstream", "$G", "streams", DefaultStream)}
			blk, err := os.ReadFile(sf.path("msgs", "1.blk"))
			if err != nil {
				t.Fatal(err)
			}
			lostFrom, lostTo := tt.damage(t, sf)

			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := Open(ctx, cfg, testLog(t))
			took := time.Since(start)
			if took > 25*time.Second {
				t.Fatalf("Open took %s", took)
			}
			if err != nil {
				t.Logf("Open refused the damaged store after %s: %v", took, err)
				if !tt.mustFail {
					t.Fatalf("Open failed on damage nats-server recovers from: %v", err)
				}
				return
			}
			defer c.Close()
			if tt.mustFail {
				t.Fatalf("Open succeeded on a store it cannot have read (stream holds %d messages)", streamMsgs(t, c))
			}
			k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
			if err != nil {
				t.Fatalf("Consumer after recovery: %v", err)
			}
			got := map[string]Message{}
			for _, d := range fetchUntilEmpty(t, k, 30*time.Second) {
				got[d.Msg.EventID] = d.Msg
				if err := d.Ack(ctxT(t, 5*time.Second)); err != nil {
					t.Fatal(err)
				}
			}
			// Every message whose stored record lies wholly outside the
			// damaged range must be back, intact.
			intact := 0
			for _, m := range want {
				enc, _ := m.MarshalBinary()
				at := int64(bytes.Index(blk, enc))
				if at < 0 {
					t.Fatalf("message %s not found in the block before damage", m.EventID)
				}
				end := at + int64(len(enc)) + 8 // + record checksum
				touched := lostFrom >= 0 && end > lostFrom && at < lostTo
				g, ok := got[m.EventID]
				switch {
				case !touched && !ok:
					t.Errorf("intact message %s (block bytes %d-%d) lost", m.EventID, at, end)
				case ok:
					sameMessage(t, g, m)
				}
				if !touched {
					intact++
				}
			}
			lostMsgs, _ := c.LostOnOpen()
			t.Logf("recovered %d of %d messages (%d outside the damage) in %s; server reports %d lost", len(got), total, intact, took, lostMsgs)
			// And the stream takes new writes.
			publishN(t, c, 1000, 1)
			if ds := fetchAll(t, k, 1, 10*time.Second); len(ds) != 1 || ds[0].Msg.EventID != msgN(1000).EventID {
				t.Fatalf("stream not usable after recovery: %d deliveries", len(ds))
			}
		})
	}
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func truncate(t *testing.T, p string, n int64) {
	t.Helper()
	if err := os.Truncate(p, n); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func overwrite(t *testing.T, p string, at int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}
