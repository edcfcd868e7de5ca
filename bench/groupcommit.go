package bench

// groupCommitJobs lists the figures of group commit (issue 5).
func (r *runner) groupCommitJobs() []job { return nil }
