package stream

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// groupKillEnv makes the test binary the child of TestGroupKill9: it
// publishes groups and settles members on the store in the named directory
// until SIGKILL.
const groupKillEnv = "RELAY_TEST_GROUP_KILL9_STORE"

// TestGroupKill9: a relay publishing groups and settling their members —
// acks, double acks, Naks that re-publish a member alone, members left
// unsettled — is killed with SIGKILL. The child writes a ledger line
// "P <event id>" once a member's group got its PubAck and "A <event id>"
// before it starts to settle a member by an ack (so the ledger never
// under-states what may have left). After reopening, every published
// member never ack-started must be delivered again (alone or in its
// group): none missing, and no loss reported.
func TestGroupKill9(t *testing.T) {
	if dir := os.Getenv(groupKillEnv); dir != "" {
		groupKillChild(t, dir)
		return
	}
	for round := range 2 {
		cfg := testConfig(t)
		cmd, out := startKillChild(t, groupKillEnv+"="+cfg.StoreDir)
		published, acked := map[string]bool{}, map[string]bool{}
		var mu sync.Mutex
		running := make(chan struct{})
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			sc := bufio.NewScanner(out)
			once := sync.OnceFunc(func() { close(running) })
			for sc.Scan() {
				line := sc.Text()
				mu.Lock()
				switch {
				case line == "RUNNING":
					once()
				case strings.HasPrefix(line, "P "):
					published[line[2:]] = true
				case strings.HasPrefix(line, "A "):
					acked[line[2:]] = true
				}
				mu.Unlock()
			}
			once()
		}()
		select {
		case <-running:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("child never got going")
		}
		time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-readDone
		cmd.Wait()

		want := map[string]bool{}
		for id := range published {
			if !acked[id] {
				want[id] = true
			}
		}
		c := mustOpen(t, cfg)
		if n, _ := c.LostOnOpen(); n != 0 {
			t.Fatalf("round %d: %d lost reported after a kill", round, n)
		}
		k, err := c.Consumer(ctxT(t, 5*time.Second), "workers")
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		got := 0
		for len(want) > 0 && time.Now().Before(deadline) {
			ds, err := k.Fetch(ctxT(t, 5*time.Second), 50)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				got++
				delete(want, d.Msg.EventID)
				if err := d.AckNoWait(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if len(want) > 0 {
			t.Fatalf("round %d: %d of %d published members never ack-started are missing after the kill (e.g. %v)",
				round, len(want), len(published)-len(acked), firstKeys(want, 3))
		}
		t.Logf("round %d: %d members published, %d ack-started before the kill; %d deliveries after, none missing", round, len(published), len(acked), got)
		c.Close()
	}
}

func firstKeys(m map[string]bool, n int) []string {
	var out []string
	for k := range m {
		if len(out) == n {
			break
		}
		out = append(out, k)
	}
	return out
}

// groupKillChild publishes groups of 2 to 6 members and settles members
// (see TestGroupKill9) until it is killed.
func groupKillChild(t *testing.T, dir string) {
	c, k := openKillChild(t, killChildConfig(dir))
	var outMu sync.Mutex
	say := func(s string) {
		outMu.Lock()
		fmt.Println(s) // one write per line
		outMu.Unlock()
	}
	for p := range 4 {
		go func() {
			for g := 0; ; g++ {
				n := 2 + g%5
				ms := make([]*Message, n)
				for i := range ms {
					ms[i] = msgN(3 * (p*1_000_000 + g*10 + i)) // project 1
				}
				if err := c.PublishGroup(context.Background(), ms, "kg-"+strconv.Itoa(p)+"-"+strconv.Itoa(g)); err != nil {
					panic(err)
				}
				for _, m := range ms {
					say("P " + m.EventID)
				}
				if p == 0 && g == 20 {
					say("RUNNING")
				}
			}
		}()
	}
	for range 4 {
		go func() {
			for j := 0; ; j++ {
				ds, err := k.Fetch(context.Background(), 20)
				if err != nil {
					panic(err)
				}
				for i, d := range ds {
					switch (i + j) % 7 {
					case 6:
						continue // left unsettled: the group comes back after AckWait
					case 5:
						if idx, _ := d.Member(); idx >= 0 {
							if err := d.Nak(0); err != nil { // re-published alone
								panic(err)
							}
							continue
						}
					}
					say("A " + d.Msg.EventID)
					ack := d.AckNoWait
					if i%2 == 1 {
						ack = func() error { return d.Ack(context.Background()) }
					}
					if err := ack(); err != nil {
						panic(err)
					}
				}
			}
		}()
	}
	select {} // until SIGKILL
}
