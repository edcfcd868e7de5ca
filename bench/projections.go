package bench

// projectionJobs lists the figures of projections (issue 4).
func (r *runner) projectionJobs() []job { return nil }
