package stream

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publishInProcess stores msg in the embedded server's stream on the
// caller's goroutine (server.StoreInProcess, the relay's patch of
// nats-server) instead of sending it over the in-process connection and
// waiting for the PubAck. It is the same store the stream's goroutine makes
// for a client's publish — limits, Nats-Msg-Id deduplication, consumers
// woken — minus the chain of goroutines between the handler and the store:
// nats.go's flusher, the connection's pipe, the server's read loop, the
// stream's inbound queue, and the way back for the PubAck. A nil error means
// what a PubAck means.
//
// Errors are translated into what the same failure gives over the
// connection, so classifyPublishError treats both alike: a store's limit
// error as the API error a PubAck would carry, a closed stream as no
// responder (retried: JetStream may be restarting).
func (c *Conn) publishInProcess(msg *nats.Msg) (*jetstream.PubAck, error) {
	seq, dup, err := c.srv.StoreInProcess(c.cfg.Stream, msg.Subject, headerBlock(msg.Header), msg.Data)
	if errors.Is(err, server.ErrStoreInProcessReplicated) {
		return nil, err
	}
	if err != nil {
		return nil, inProcessError(err)
	}
	return &jetstream.PubAck{Stream: c.cfg.Stream, Sequence: seq, Duplicate: dup}, nil
}

// headerBlock is h in NATS's wire form ("NATS/1.0\r\nKey: value\r\n...\r\n"),
// as a client's publish carries it; nil for no header. (Publish sets only
// Nats-Msg-Id.)
func headerBlock(h nats.Header) []byte {
	if len(h) == 0 {
		return nil
	}
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	b := make([]byte, 0, n)
	b = append(b, "NATS/1.0\r\n"...)
	for k, vs := range h {
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...)
}

// inProcessError turns StoreInProcess's error into the error the same
// failure gives a client's publish.
func inProcessError(err error) error {
	var apiErr *server.ApiError
	switch {
	case server.IsNatsErr(err, server.JSStreamNotFoundErr):
		// Over the connection nobody listens on the subject: no responders.
		return fmt.Errorf("store in process: %w: %w", nats.ErrNoResponders, err)
	case errors.As(err, &apiErr):
		return &jetstream.APIError{Code: apiErr.Code, ErrorCode: jetstream.ErrorCode(apiErr.ErrCode), Description: apiErr.Description}
	case errors.Is(err, server.ErrMaxBytes), errors.Is(err, server.ErrMaxMsgs),
		errors.Is(err, server.ErrMaxMsgsPerSubject), errors.Is(err, server.ErrMsgTooLarge):
		// A PubAck carries these as "store failed" with the store's text.
		return &jetstream.APIError{Code: 503, ErrorCode: jsErrStoreFailed, Description: err.Error()}
	case errors.Is(err, server.ErrMaxPayload):
		return &jetstream.APIError{Code: 400, ErrorCode: jsErrMessageTooBig, Description: err.Error()}
	}
	// A closed stream, a missing one, an I/O error: a client's publish gets
	// no PubAck for these and retries after its timeout.
	return fmt.Errorf("store in process: %w: %w", nats.ErrNoResponders, err)
}
