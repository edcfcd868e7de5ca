// Package bridgetest is the acceptance suite of bridge adapters, modelled
// on watermill's universal Pub/Sub tests: every adapter in this module
// (memory, rabbitmq, kafka) runs it, and so should any other. It checks
// what the bridge runners rely on: that a published message is received
// with its key, headers and body; that one subscriber gets one key's
// messages in order; that a nacked message comes again, with the same ID;
// that a message neither acked nor nacked comes again once its subscriber
// is closed; that closing a subscriber while messages flow loses none;
// that concurrent subscribers share a topic without loss; that a closed
// publisher refuses to publish; and, where the test can restart the
// broker, that publishers and subscribers carry on after a restart.
//
// The suite asks for at-least-once delivery: a message may come twice
// (after a restart, a nack, a closed subscriber), never zero times.
package bridgetest
