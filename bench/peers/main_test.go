package peers

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks for leaked goroutines, except in the child processes: they
// run the peers' runtimes, whose background goroutines are not ours to check,
// and end with the process.
func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}
