package dashboard

// SetBulkStepHook makes each step of a bulk dead letter action call f
// first; nil: none. For the tests of the package.
func SetBulkStepHook(f func()) {
	if f == nil {
		bulkStepHook.Store(nil)
		return
	}
	bulkStepHook.Store(&f)
}
