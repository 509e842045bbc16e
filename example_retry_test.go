package durable_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// A call to a flaky service: each attempt gets 50 ms, a failed or late
// attempt is tried again after 1 ms, 2 ms, ... and every failed attempt is
// journaled, so a crashed worker resumes with the same count.
func ExampleWithRetry() {
	ctx := durable.WithJournal(context.Background(), journal.NewMemory(), "order-7")
	calls := 0
	quote := durable.NewStep("quote", func(ctx context.Context) (int, error) {
		calls++
		if calls < 3 {
			return 0, errors.New("503 service unavailable")
		}
		return 1999, nil
	},
		durable.WithRetry(durable.RetryPolicy{MaxAttempts: 5, Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}),
		durable.WithStepTimeout(50*time.Millisecond),
	)
	cents, err := quote.Run(ctx)
	fmt.Println(cents, err, "after", calls, "attempts")
	// Output: 1999 <nil> after 3 attempts
}

// A batch job that tolerates up to 1% bad records.
func ExampleSettleEach() {
	ctx := context.Background()
	lines := make([]string, 200)
	for i := range lines {
		lines[i] = strconv.Itoa(i)
	}
	lines[42] = "forty-two" // a bad record
	res, err := durable.SettleEach(ctx, "import", lines,
		func(_ context.Context, line string) (int, error) { return strconv.Atoi(line) },
		durable.WithCompletion(durable.ToleratedFailureRatio(0.01)),
		durable.WithMaxConcurrency(8))
	fmt.Println(res.Reason, res.SuccessCount(), res.FailureCount(), err)
	fmt.Println(res.Failed()[0].Name, res.Failed()[0].Err)
	// Output:
	// ALL_COMPLETED 199 1 <nil>
	// 42 strconv.Atoi: parsing "forty-two": invalid syntax
}

// A quorum write: it succeeds once 3 of 5 replicas have the value, and fails as
// soon as 3 can no longer be reached.
func ExampleCompleteWhen() {
	ctx := context.Background()
	quorum := durable.CompleteWhen("quorum", func(t durable.Tally) durable.Verdict {
		switch {
		case t.Succeeded >= 3:
			return durable.VerdictMet
		case t.Total-t.Failed < 3:
			return durable.VerdictFailed
		}
		return durable.VerdictContinue
	})
	down := map[string]bool{"r2": true, "r4": true}
	res, err := durable.SettleEach(ctx, "write", []string{"r1", "r2", "r3", "r4", "r5"},
		func(_ context.Context, replica string) (string, error) {
			if down[replica] {
				return "", errors.New(replica + " is down")
			}
			return replica, nil
		},
		durable.WithCompletion(quorum), durable.WithMaxConcurrency(1))
	fmt.Println(res.Reason, res.Values(), err)
	// Output: RULE_MET [r1 r3 r5] <nil>
}
