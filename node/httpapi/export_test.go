package httpapi

// OnSlow sets the hook called when a WebSocket client is found slow.
func OnSlow(o *Options, f func()) { o.onSlow = f }
