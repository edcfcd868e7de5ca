package handlers

// CutPrefix lets the tests read what a bus sent.
var CutPrefix = cutPrefix

// IdempotencyKVKey lets the tests find a key's records.
var IdempotencyKVKey = idempotencyKVKey

// ForgetContextKeys makes dispatches skip the context's idempotency key
// again, as in a process that never called WithIdempotencyKey.
func ForgetContextKeys() { keysInContexts.Store(false) }
