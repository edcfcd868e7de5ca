// Package oldnats connects tests to an older nats-server, the kind a real
// user may still run: Debian's 2.9.10 on 127.0.0.1:4222 (which .ci/run
// starts), or the server LEXIGRAM_OLD_NATS_URL names. A test without it
// skips, or fails under CI=true, as a test without PostgreSQL does
// (internal/pgtest).
package oldnats
