package jetstream

// AlwaysGroup turns group commit on and has it queue every append that
// finds a commit under way, whatever the costs, as the tests of the group
// path need.
func AlwaysGroup(o *Options) {
	o.GroupCommit.Enabled = true
	o.GroupCommit.choose = func(*costModel) bool { return true }
}

// SwitchEvery turns group commit on and has it switch between groups and
// singles after every n completions, so that tests meet appends caught in
// every switch.
func SwitchEvery(n int) func(o *Options) {
	return func(o *Options) {
		o.GroupCommit.Enabled = true
		calls := 0
		o.GroupCommit.choose = func(m *costModel) bool {
			calls++ // called with the committer's lock held
			if calls%n == 0 {
				return !m.grouping
			}
			return m.grouping
		}
	}
}
