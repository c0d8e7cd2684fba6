package project

import (
	"sync"
	"sync/atomic"
	"testing"
)

// Readers never see half an update: while files change and scans publish,
// every answer for a key is one the registry gave for some complete file
// version (accepted, or refused as Cors by the narrowed version).
func TestRegistryConcurrentReadersDuringScans(t *testing.T) {
	dir := t.TempDir()
	wide := `{"publicKeys":[{"publicKey":"` + keyA + `"}],"config":{"allowedDomains":["*"],"piiConfig":{"applications":{"extra.x":["@anything:remove"]}}}}`
	narrow := `{"publicKeys":[{"publicKey":"` + keyA + `"}],"config":{"allowedDomains":["example.com"]}}`
	writeFile(t, dir, "42.json", wide)
	reg, scan := runningSource(t, dir, Options{Static: true})

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				r, id := reg.Admit(keyA, 42, true, "https://evil.net")
				if (r != "" && r != ReasonCors) || id != 42 {
					errs <- r
					return
				}
				if _, err := reg.ScrubberFor(keyA); err != nil {
					errs <- err.Error()
					return
				}
			}
		}()
	}
	for i := range 20 {
		if i%2 == 0 {
			writeFile(t, dir, "42.json", narrow)
		} else {
			writeFile(t, dir, "42.json", wide)
		}
		scan()
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("a reader saw %q", e)
	}
}

func BenchmarkAdmit(b *testing.B) {
	dir := b.TempDir()
	writeFile(b, dir, "42.json", `{"publicKeys":[{"publicKey":"`+keyA+`"}],"config":{"allowedDomains":["*.example.com","https://shop.example.org"]}}`)
	reg := NewRegistry(Options{Static: true})
	if err := NewStaticSource(dir, reg, 0, discardLog()).Scan(); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, origin string }{{"no_origin", ""}, {"origin", "https://shop.example.org"}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r, _ := reg.Admit(keyA, 42, true, bc.origin); r != "" {
					b.Fatal(r)
				}
			}
		})
	}
}
