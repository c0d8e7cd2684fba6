// This file is not part of nats-server: it is added by the relay's patch
// (internal/third_party/nats-server.patch) and exports one entry point for a
// process that embeds the server and publishes to its own streams.

package server

import "errors"

// ErrStoreInProcessReplicated is StoreInProcess's answer for a replicated
// (clustered) stream, whose messages must go through its Raft group: publish
// over a client connection instead.
var ErrStoreInProcessReplicated = errors.New("nats: stream is replicated: store in process not supported")

// ErrStoreInProcessClosed is StoreInProcess's answer when the stream is
// closed (the server or JetStream shutting down, the stream being deleted or
// recreated): the message was not stored, and a later attempt may find the
// stream again.
var ErrStoreInProcessClosed = errors.New("nats: stream closed")

// StoreInProcess stores one message in stream of the global account on the
// caller's goroutine, as the stream's own goroutine stores a client's
// publish (processJetStreamMsg: the same limits, deduplication by
// Nats-Msg-Id, consumers signalled), without the client protocol, the
// stream's inbound queue or a PubAck message. hdr is a NATS header block
// ("NATS/1.0\r\n...\r\n\r\n") or nil. Neither hdr nor msg is kept once it
// returned.
//
// A nil error means what a PubAck means: the message is stored (seq) and a
// consumer can get it. duplicate reports a Nats-Msg-Id stored within the
// stream's duplicate window; seq is then that copy's. The sequence is exact
// because every store of the stream holds its isolation lock, which this
// holds from the store to reading the stream's last sequence.
func (s *Server) StoreInProcess(stream, subject string, hdr, msg []byte) (seq uint64, duplicate bool, err error) {
	acc := s.GlobalAccount()
	if acc == nil {
		return 0, false, ErrStoreInProcessClosed
	}
	mset, err := acc.lookupStream(stream)
	if err != nil {
		return 0, false, err
	}
	if mset.IsClustered() {
		return 0, false, ErrStoreInProcessReplicated
	}
	mset.isolateMu.Lock()
	defer mset.isolateMu.Unlock()
	switch err := mset.processJetStreamMsg(subject, _EMPTY_, hdr, msg, 0, 0, nil, false, false); {
	case err == nil:
		mset.mu.RLock()
		seq = mset.lseq
		mset.mu.RUnlock()
		return seq, false, nil
	case errors.Is(err, errMsgIdDuplicate):
		mset.ddMu.Lock()
		if dde := mset.checkMsgId(getMsgId(hdr)); dde != nil {
			seq = dde.seq
		}
		mset.ddMu.Unlock()
		return seq, true, nil
	case errors.Is(err, errStreamClosed), errors.Is(err, ErrStoreClosed):
		return 0, false, ErrStoreInProcessClosed
	default:
		return 0, false, err
	}
}
