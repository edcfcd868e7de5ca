package sagas_test

import (
	"testing"

	"github.com/lexigram/events/sagas"
	"github.com/lexigram/events/sagas/sagatest"
)

func TestMemoryStoreConformance(t *testing.T) {
	sagatest.Run(t, func(*testing.T) sagas.Store { return sagas.NewMemoryStore() }, nil)
}
