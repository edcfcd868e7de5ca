// Package memory is an in-process broker for bridges: a set of named
// queues with competing subscribers, manual acks, redelivery of what is
// not acked, and outages on demand (Broker.Stop, Broker.Start). Use it to
// test code that runs bridges without a real broker; it passes the same
// acceptance suite (bridges/bridgetest) as the real adapters.
//
// It also registers itself as the broker "memory" with one shared Broker
// (Default), whose settings are "topic" and, for subscribers, "prefetch".
package memory
