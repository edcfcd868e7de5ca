// Package embeddedtest starts throwaway embedded NATS servers and three-node
// JetStream clusters for tests. Everything runs in the test process on
// loopback with random ports and temporary directories, and is shut down by
// t.Cleanup, so tests can run in parallel and never depend on port 4222.
package embeddedtest
