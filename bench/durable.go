package bench

// durableJobs lists the figures of durable event handlers (issue 3).
func (r *runner) durableJobs() []job { return nil }
