package project

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Rescan makes a running source read the directory at once, without waiting
// for the next tick (the interval here is an hour and no tick is sent).
func TestStaticRescan(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "projects")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry(Options{Static: true})
	src := NewStaticSource(dir, reg, time.Hour, discardLog())
	if err := src.Scan(); err != nil {
		t.Fatal(err)
	}
	src.ticks = make(chan time.Time) // never ticks
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = src.Run(ctx)
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()

	writeFile(t, dir, "42.json", `{"publicKeys":[{"publicKey":"`+keyA+`"}]}`)
	src.Rescan()
	src.Rescan() // a second request while one is pending does not block
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r, id := reg.Admit(keyA, 42, true, ""); r == "" && id == 42 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the file written before Rescan is still unknown")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
