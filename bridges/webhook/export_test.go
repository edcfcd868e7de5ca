package webhook

// PendingLen counts the messages whose progress the publisher remembers
// between Publish calls.
func PendingLen(p *Publisher) int { return p.pending.len() }
