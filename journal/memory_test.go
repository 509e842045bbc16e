package journal_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/durable-go/durable/journal"
	"github.com/durable-go/durable/journal/journaltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemoryConformance(t *testing.T) {
	journaltest.Run(t, func() journal.Journal { return journal.NewMemory() })
}
