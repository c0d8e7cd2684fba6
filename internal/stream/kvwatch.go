package stream

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Watch calls update for every value of the bucket, then for every later
// change, in the order the bucket stored them; a deleted or purged key comes
// with a nil value. It returns once the values present at the call have
// been delivered, so a caller's cache is warm when Watch returns; the later
// changes are delivered by a goroutine that stops when ctx is done (and
// Watch's owner is whoever owns ctx). update runs on that one goroutine and
// must not block for long: the watch does not advance while it runs.
func (k *KV) Watch(ctx context.Context, update func(key string, value []byte)) error {
	w, err := k.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("stream: kv watch %s: %w", k.kv.Bucket(), err)
	}
	// The initial values, then nil: the watcher's "caught up" marker.
	for {
		select {
		case <-ctx.Done():
			_ = w.Stop()
			return fmt.Errorf("stream: kv watch %s: %w", k.kv.Bucket(), ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("stream: kv watch %s: watcher closed", k.kv.Bucket())
			}
			if e == nil {
				go k.follow(ctx, w, update)
				return nil
			}
			deliver(e, update)
		}
	}
}

// follow delivers the watcher's updates until ctx is done.
func (k *KV) follow(ctx context.Context, w jetstream.KeyWatcher, update func(string, []byte)) {
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil {
				deliver(e, update)
			}
		}
	}
}

func deliver(e jetstream.KeyValueEntry, update func(string, []byte)) {
	if e.Operation() != jetstream.KeyValuePut {
		update(e.Key(), nil)
		return
	}
	update(e.Key(), e.Value())
}
