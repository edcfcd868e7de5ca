// Package kafka is the Kafka adapter of bridges, on franz-go (kgo),
// registered as the broker "kafka".
//
// The Publisher produces with the idempotent producer and acks=all (the
// franz-go defaults, set explicitly): Publish returns once every in-sync
// replica has each record. A record's key is the message's Key, the
// aggregate ID for events, so that one aggregate's events share a
// partition and keep their order. Records the broker refuses for good
// (too large, invalid, an invalid or forbidden topic) fail with
// bridges.Refused; everything else franz-go retries until the context of
// the Publish call ends.
//
// The Subscriber consumes a topic in a consumer group with auto-commit
// off: it commits a partition's offset only past records that were all
// acked, that is stored in JetStream by the inbound bridge, in the order
// of the partition. When partitions are revoked in a rebalance it commits
// what was acked and forgets the rest: the new owner gets them again from
// the committed offset, and their IDs (topic-partition-offset) make the
// inbound bridge store them once. A nacked record is delivered again by
// this subscriber.
//
// CloudEvents binary mode uses "ce_" headers, as the CloudEvents Kafka
// binding has them; the inbound side reads "ce-" too.
//
// Settings of the registered driver: brokers (comma-separated
// host:port), topic, group (subscribers), and declare ("true" creates
// the topic when it is missing, with partitions and replication_factor,
// each the brokers' default when left out; an existing topic is left as
// it is).
package kafka
