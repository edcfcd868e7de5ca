// Package pgtest gives tests the PostgreSQL database they run against:
// LEXIGRAM_TEST_POSTGRES, or the local server with trust auth and its
// database "test" (what .ci/run starts). A test that cannot reach it
// skips, saying how to start it, and fails instead under CI=true, where
// a skip would be a missing test.
package pgtest
