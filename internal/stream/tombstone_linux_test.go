//go:build linux

package stream

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// An ack of an old message must not make the embedded store reload the
// block being written. The ack removes the message and nats-server writes a
// delete tombstone into that block; unpatched, the tombstone's timestamp (the
// removed message's) made the block look idle, its cache was dropped and the
// next publish read the whole block back from disk, after which the block
// stayed in memory for 10 s past its end. In a long outage, while the
// worker moves the full stream into the spool, that is every block ingest
// wrote in the last 10 s: 50–150 MB (README, "Memory through a long
// outage"). go.mod replaces nats-server with internal/third_party/nats-server
// for this; the test fails if that patch is lost in an upgrade.
//
// It watches the bytes this process read (/proc/self/io rchar; the embedded
// server and its in-process client share the process, and their connection
// is a pipe, not a socket) across one ack and one small publish.
func TestTombstoneKeepsWriteCache(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBytes = 1 << 30 // 8 MiB blocks, as in a default relay
	cfg.AckWait = time.Minute
	c := openTest(t, cfg)
	ctx := ctxT(t, 2*time.Minute)
	k, err := c.Consumer(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	big := func(i int) {
		t.Helper()
		m := msgN(i)
		m.Envelope = bytes.Repeat([]byte{'x'}, 100<<10)
		if err := c.Publish(ctx, m, fmt.Sprintf("id-%d", i)); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}

	for i := range 20 {
		big(i)
	}
	// Older than nats-server's write-cache expiry (10 s) by the time they
	// are acked, as the head of a stream is in an outage.
	time.Sleep(11 * time.Second)
	// New messages until the store starts a new block, then ~3 MB into it,
	// so that a reload of it would read megabytes.
	blocks := blockFiles(t, cfg.StoreDir)
	i := 20
	for ; blockFiles(t, cfg.StoreDir) == blocks; i++ {
		if i > 200 {
			t.Fatalf("no new block after %d 100 KB messages", i)
		}
		big(i)
	}
	for end := i + 30; i < end; i++ {
		big(i)
	}
	// The oldest message, delivered; reading it loads its own block, before
	// the measurement.
	ds := fetchAll(t, k, 1, 5*time.Second)
	if len(ds) != 1 || ds[0].Sequence() != 1 {
		t.Fatalf("fetched %d deliveries, want sequence 1", len(ds))
	}

	before := readBytes(t)
	if err := ds[0].Ack(ctx); err != nil { // a tombstone with sequence 1's time, into the new block
		t.Fatal(err)
	}
	if err := c.Publish(ctx, msgN(1000), "id-small"); err != nil { // the next write to that block
		t.Fatal(err)
	}
	if read := readBytes(t) - before; read > 512<<10 {
		t.Fatalf("an ack and a 1 KB publish read %d bytes: the embedded store reloaded the block being written (is internal/third_party/nats-server's patch applied?)", read)
	}
}

// blockFiles counts the stream store's message block files.
func blockFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".blk") && filepath.Base(filepath.Dir(path)) == "msgs" {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// readBytes is the bytes this process has read through read syscalls.
func readBytes(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/io")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("/proc/self/io has no rchar: %v", sc.Err())
	return 0
}
