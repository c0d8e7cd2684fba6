// Package stream is the relay's JetStream layer: it starts the embedded NATS
// server (or connects to an external one), declares the stream and the
// durable consumer, publishes with a PubAck, fetches with explicit acks, and
// owns Message — the one versioned type that ingest writes and the worker
// reads (message.go).
//
// Files: stream.go (Config, Open, Ready, Close), embedded.go (the in-process
// nats-server, its logger, damaged-store checks), record.go (the start-up
// loss check), storewatch.go (refusing publishes while the store cannot
// write, reloading it once it can), publish.go (Publish and its error
// mapping), group.go and groupbuild.go (the version-2 group message: several
// Messages in one stream message, built member by member by ingest's group
// publish and published with PublishBuilt), syncer.go (sync "always" as a
// group fsync), consumer.go (Consumer, Fetch, Delivery), groupconsume.go (a
// group's members and their settlement), acknowait.go (acks without a round
// trip), kv.go (key-value buckets on the relay's
// connection: a cache the processes of one deployment share).
//
// The promises, in the terms of shared/docs/durability.md:
//   - Publish returns nil only after the PubAck (with the embedded server:
//     after the store call that would have sent it): the message is in the
//     stream's block file (it survives the relay being killed); with Sync
//     "always" also fsynced (it survives a power loss).
//   - The stream is a work queue: a message leaves it only when a worker
//     acks it (Delivery.Ack, a double ack, or Delivery.AckNoWait, which does
//     not wait for the answer: a lost one is a redelivery). Un-acked messages come back after
//     AckWait, also across restarts; Nak brings one back sooner.
//   - A group (several Messages in one stream message, group.go) is
//     fetched as one Delivery per member and acked on the stream only
//     once every member was settled: acked, or Nak'd and re-published
//     alone with a PubAck (under a Nats-Msg-Id made of the group's id and
//     the member's index, so a redelivered group re-publishes the same
//     ids and JetStream keeps one copy). If a member's re-publish fails,
//     the group is Nak'd whole when its last member settles: duplicates
//     of the members already settled, never a loss (groupconsume.go).
//   - Fetch waits for a message until the server itself ends its pull
//     request, never on a client-side clock alone: the server never hands a
//     message to a pull the worker stopped listening to (which would keep
//     it from every worker for a whole AckWait) — unless Fetch's ctx ended
//     (a shutdown), or the server's answer is over a second late.
//   - A full stream refuses new messages (ErrFull); it never drops old ones.
//     So does a full disk under the embedded store, until space is back and
//     the store is reloaded without a restart.
//   - Open never hangs and never starts empty over a store the server could
//     not load (see startEmbedded for what nats-server recovers).
//   - Open never loads a damaged embedded store silently: messages that
//     were acknowledged, not acked by a worker, and are no longer in the
//     store are counted and logged as an ERROR with their sequences (the
//     relay's own record of them, record.go).
//   - An existing stream on an external server is used only when none of its
//     settings can delete a message before a worker acks it and it keeps at
//     least Config.Replicas copies; otherwise Open fails naming each such
//     setting and leaves the stream as it is (checkExternalStream). More
//     replicas than configured are kept. The same for an existing consumer
//     whose settings could strand a message (checkExternalConsumer).
//   - JetStream going away and coming back is logged once per change for
//     the process, not per operation (availability.go).
//
// Subjects are "<lower-case stream name>.<project id>", e.g.
// "relay_envelopes.42"; one durable consumer, shared by every worker, takes
// them all.
package stream
