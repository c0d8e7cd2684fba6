package stream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KV is a JetStream key-value bucket on the relay's connection: what the
// relay processes of one deployment share besides the stream (fetched
// project configs). It is a cache, not part of the durability path: nothing
// in it is ever the only copy of something the relay promised to keep.
type KV struct {
	kv jetstream.KeyValue
}

// KeyValue creates the bucket, or binds to it when it exists, with values
// that expire ttl after they were put (0: never) and the stream's replicas.
// A bucket that exists with other settings is used as it is.
func (c *Conn) KeyValue(ctx context.Context, bucket string, ttl time.Duration) (*KV, error) {
	kv, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:   bucket,
		TTL:      ttl,
		History:  1,
		Replicas: c.cfg.Replicas,
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		// Another process may have declared it differently: use it as is.
		if kv2, err2 := c.js.KeyValue(ctx, bucket); err2 == nil {
			c.log.Warn("key-value bucket exists with other settings; using it as it is", "bucket", bucket, "err", err)
			return &KV{kv: kv2}, nil
		}
		return nil, fmt.Errorf("stream: key-value bucket %s: %w", bucket, err)
	}
	return &KV{kv: kv}, nil
}

// Get returns the value of key, nil (and no error) when the bucket has none.
func (k *KV) Get(ctx context.Context, key string) ([]byte, error) {
	v, _, err := k.GetRevision(ctx, key)
	return v, err
}

// ErrKVConflict is Swap's answer when the key's revision is no longer the
// one given: another process wrote it meanwhile.
var ErrKVConflict = errors.New("stream: kv: the key changed meanwhile")

// GetRevision returns the value of key and its revision; nil and 0 (and no
// error) when the bucket has none.
func (k *KV) GetRevision(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := k.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("stream: kv get %s: %w", key, err)
	}
	return e.Value(), e.Revision(), nil
}

// Swap sets key to value only if its revision is still rev (0: the key has
// no value), else returns an error matching ErrKVConflict: a read, merge
// and write that no other process's write can slip between.
func (k *KV) Swap(ctx context.Context, key string, value []byte, rev uint64) error {
	var err error
	if rev == 0 {
		_, err = k.kv.Create(ctx, key, value)
	} else {
		_, err = k.kv.Update(ctx, key, value, rev)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return fmt.Errorf("stream: kv swap %s at revision %d: %w", key, rev, ErrKVConflict)
	default:
		return fmt.Errorf("stream: kv swap %s: %w", key, err)
	}
}

// Put sets key to value.
func (k *KV) Put(ctx context.Context, key string, value []byte) error {
	if _, err := k.kv.Put(ctx, key, value); err != nil {
		return fmt.Errorf("stream: kv put %s: %w", key, err)
	}
	return nil
}

// isKVStream reports whether a stream is a key-value bucket's (JetStream
// names them KV_<bucket>): its values are not envelopes left unforwarded.
func isKVStream(name string) bool { return strings.HasPrefix(name, "KV_") }
