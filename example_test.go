package durable_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

func ExampleParallel() {
	ctx := context.Background()
	steps := []durable.Step[string]{
		durable.NewStep("upper", func(context.Context) (string, error) { return strings.ToUpper("durable"), nil }),
		durable.NewStep("repeat", func(context.Context) (string, error) { return strings.Repeat("ab", 3), nil }),
	}
	out, err := durable.Parallel(ctx, "words", steps, durable.WithMaxConcurrency(2))
	fmt.Println(out, err)
	// Output: [DURABLE ababab] <nil>
}

func ExampleParallel_failFast() {
	ctx := context.Background()
	errDown := errors.New("provider down")
	steps := []durable.Step[int]{
		durable.NewStep("slow", func(ctx context.Context) (int, error) {
			<-ctx.Done() // cancelled by the failure of "broken"
			return 0, ctx.Err()
		}),
		durable.NewStep("broken", func(context.Context) (int, error) { return 0, errDown }),
	}
	_, err := durable.Parallel(ctx, "providers", steps)
	var be *durable.BranchError
	fmt.Println(errors.As(err, &be), be.Name, errors.Is(err, errDown))
	// Output: true broken true
}

func ExampleParallelNamed() {
	ctx := context.Background()
	prices, err := durable.ParallelNamed(ctx, "prices", []durable.Step[int]{
		durable.NewStep("eu", func(context.Context) (int, error) { return 120, nil }),
		durable.NewStep("us", func(context.Context) (int, error) { return 100, nil }),
	})
	fmt.Println(prices["eu"], prices["us"], err)
	// Output: 120 100 <nil>
}

func ExampleFanOut() {
	ctx := context.Background()
	images := []string{"a.png", "b.png", "c.png"}
	sizes, err := durable.FanOut(ctx, "resize", images,
		func(ctx context.Context, name string) (int, error) { return len(name) * 100, nil },
		durable.WithMaxConcurrency(2),
		durable.WithKey(func(name string) string { return name }), // journal keys by item
	)
	fmt.Println(sizes, err)
	// Output: [500 500 500] <nil>
}

func ExampleSettle() {
	ctx := context.Background()
	step := func(name string, fail bool) durable.Step[string] {
		return durable.NewStep(name, func(context.Context) (string, error) {
			if fail {
				return "", errors.New(name + " failed")
			}
			return name + " ok", nil
		})
	}
	res, err := durable.Settle(ctx, "notify", []durable.Step[string]{
		step("email", false), step("sms", true), step("push", false),
	}, durable.WithCompletion(durable.ToleratedFailures(1)))
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Reason, res.SuccessCount(), res.FailureCount())
	for _, it := range res.Items {
		fmt.Println(it.Index, it.Name, it.Status, it.Value, it.Err)
	}
	// Output:
	// ALL_COMPLETED 2 1
	// 0 email SUCCEEDED email ok <nil>
	// 1 sms FAILED  sms failed
	// 2 push SUCCEEDED push ok <nil>
}

func ExampleSettle_timeout() {
	ctx := context.Background()
	wait := func(name string, d time.Duration) durable.Step[string] {
		return durable.NewStep(name, func(ctx context.Context) (string, error) {
			select {
			case <-time.After(d):
				return name, nil
			case <-ctx.Done():
				return "", ctx.Err()
			}
		})
	}
	res, err := durable.Settle(ctx, "mirrors", []durable.Step[string]{
		wait("near", time.Millisecond),
		wait("far", time.Hour),
		wait("farther", time.Hour),
	}, durable.WithTimeout(200*time.Millisecond), durable.WithMaxConcurrency(2))
	fmt.Println(res.Reason, err)
	for _, it := range res.Items {
		fmt.Println(it.Name, it.Status)
	}
	// Output:
	// TIMED_OUT <nil>
	// near SUCCEEDED
	// far CANCELLED
	// farther CANCELLED
}

func ExampleRace() {
	ctx := context.Background()
	after := func(name string, d time.Duration) durable.Step[string] {
		return durable.NewStep(name, func(ctx context.Context) (string, error) {
			select {
			case <-time.After(d):
				return name, nil
			case <-ctx.Done():
				return "", ctx.Err()
			}
		})
	}
	winner, err := durable.Race(ctx, "models", []durable.Step[string]{
		after("large", time.Hour),
		after("small", time.Millisecond),
	})
	fmt.Println(winner, err)
	// Output: small <nil>
}

func ExampleAny() {
	ctx := context.Background()
	errTimeout := errors.New("no answer")
	answer, err := durable.Any(ctx, "resolvers", []durable.Step[string]{
		durable.NewStep("primary", func(context.Context) (string, error) { return "", errTimeout }),
		durable.NewStep("backup", func(context.Context) (string, error) { return "10.0.0.7", nil }),
	})
	fmt.Println(answer, err)
	// Output: 10.0.0.7 <nil>
}

func ExampleGo() {
	ctx := context.Background()
	g := durable.NewGroup(ctx, "profile", durable.WithMaxConcurrency(2))
	user := durable.Go(g, "user", func(context.Context) (string, error) { return "ada", nil })
	orders := durable.Go(g, "orders", func(context.Context) ([]int, error) { return []int{7, 9}, nil })
	score := durable.Go(g, "score", func(context.Context) (float64, error) { return 0.93, nil })
	if err := g.Wait(); err != nil {
		panic(err)
	}
	u, _ := user.Get()
	o, _ := orders.Get()
	s, _ := score.Get()
	fmt.Println(u, o, s)
	// Output: ada [7 9] 0.93
}

func ExampleWithJournal() {
	ctx := context.Background()
	j := journal.NewMemory() // use a durable backend in production
	runs := 0
	steps := []durable.Step[int]{
		durable.NewStep("charge", func(context.Context) (int, error) { runs++; return 42, nil }),
	}
	for range 3 { // the same execution, retried
		out, err := durable.Parallel(durable.WithJournal(ctx, j, "order-1"), "checkout", steps)
		fmt.Println(out, err)
	}
	fmt.Println("charged", runs, "time")
	// Output:
	// [42] <nil>
	// [42] <nil>
	// [42] <nil>
	// charged 1 time
}

func ExampleStep_Run() {
	ctx := durable.WithJournal(context.Background(), journal.NewMemory(), "job-7")
	fetch := durable.NewStep("fetch", func(context.Context) (string, error) { return "payload", nil })
	v, err := fetch.Run(ctx)
	fmt.Println(v, err)
	// Output: payload <nil>
}
