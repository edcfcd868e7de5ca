package projections

// SetBeforeFollow makes l call f each time Follow starts, before it
// subscribes: a test holds a standby's subscription back with it until the
// active process has announced its progress.
func SetBeforeFollow(l *KVLeases, f func()) { l.beforeFollow = f }
