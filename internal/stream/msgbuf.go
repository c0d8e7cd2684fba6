package stream

import (
	"math/bits"
	"sync"
)

// Buffers for the encoding of a large Message published alone (Publish).
//
// Why: each envelope over 64 KiB is encoded into a fresh buffer of its size
// (MarshalBinary), which is garbage as soon as the PubAck arrives. Under a
// stream of 200 KB envelopes that was the relay's largest allocation site
// (2.5 GB of 5.5 GB allocated while 2 GB were stored, heap profiles of
// cmd/relay-load/memory.sh), and garbage made faster than the collector
// frees it is what pushes the RSS past the soft memory limit.
//
// Invariant: a buffer is put back only after Publish got its PubAck. Until
// then nats.go's asynchronous publish keeps the nats.Msg (and so these
// bytes) to resend it itself after a "no responders" answer, from a timer
// that can still fire after the future failed or the caller gave up
// (jetstream/publish.go, v1.55.0); after the ack nothing resends it. The
// bytes themselves are copied into the connection's write buffer inside
// PublishMsg (natsWriter.appendBufs), so the ack is the only wait. On any
// failure the buffer is left to the collector.
//
// Cost: a pooled buffer is rounded up to a power of two (at most twice the
// message), and sync.Pool keeps buffers across at most two collections, so
// an idle relay holds none. Messages up to 64 KiB (most events; most go
// into groups, groupbuild.go) and over 4 MiB are allocated as before: the
// first are cheap, the second too rare and too big to keep.
const (
	messageBufMinShift = 17 // smallest class: 128 KiB, for messages of 64 KiB + 1 byte up
	messageBufMaxShift = 22 // largest class: 4 MiB
	messageBufMin      = 64<<10 + 1
)

// messageBufPools[i] holds *[]byte of capacity 1<<(messageBufMinShift+i).
var messageBufPools [messageBufMaxShift - messageBufMinShift + 1]sync.Pool

// messageBufClass is the pool index for a message of n bytes, or -1 when n
// is not pooled.
func messageBufClass(n int) int {
	if n < messageBufMin || n > 1<<messageBufMaxShift {
		return -1
	}
	return bits.Len(uint(n-1)) - messageBufMinShift
}

// getMessageBuf returns an empty buffer of capacity >= n from the pools, or
// nil when messages of n bytes are not pooled.
func getMessageBuf(n int) *[]byte {
	i := messageBufClass(n)
	if i < 0 {
		return nil
	}
	if b, ok := messageBufPools[i].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 1<<(messageBufMinShift+i))
	return &b
}

// putMessageBuf returns b (from getMessageBuf, unchanged: its own backing
// array and capacity) to its pool. The caller must hold no other
// reference to its bytes.
func putMessageBuf(b *[]byte) {
	i := messageBufClass(cap(*b))
	if i < 0 || cap(*b) != 1<<(messageBufMinShift+i) {
		return
	}
	*b = (*b)[:0]
	messageBufPools[i].Put(b)
}
