// Package embedded runs a NATS server with JetStream inside the current
// process, so a single binary can be its own event store without an external
// nats-server to install and operate.
//
// Start returns a running [Server]. Code in the same process should use
// [Server.Connect], which talks to the server through an in-memory pipe
// instead of a socket; other processes (the nats CLI, other services) use
// [Server.ClientURL] unless the server was started with DontListen.
//
// Durability is an explicit choice: by default every write is fsynced before
// JetStream acknowledges it. A positive [Options.FsyncInterval] trades that
// guarantee for throughput, see its documentation.
package embedded
