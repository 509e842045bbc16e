package inspect_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/inspect"
	"github.com/durable-go/durable/journal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scanJournal is a journal.Memory that can scan, keeping its keys.
type scanJournal struct {
	*journal.Memory
	mu   sync.Mutex
	keys []string
}

func newScanJournal() *scanJournal { return &scanJournal{Memory: journal.NewMemory()} }

func (s *scanJournal) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	stored, err := s.Memory.Put(ctx, key, value)
	if err == nil {
		s.mu.Lock()
		if !slices.Contains(s.keys, key) {
			s.keys = append(s.keys, key)
		}
		s.mu.Unlock()
	}
	return stored, err
}

// Scan lends each value, as journal.Scanner allows: fn gets it in a buffer
// that is overwritten once fn returns.
func (s *scanJournal) Scan(ctx context.Context, prefix string, fn func(string, []byte) error) error {
	s.mu.Lock()
	keys := slices.Clone(s.keys)
	s.mu.Unlock()
	sort.Strings(keys)
	var lent []byte
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			v, _, _ := s.Get(ctx, k)
			lent = append(lent[:0], v...)
			err := fn(k, lent)
			for i := range lent {
				lent[i] = 0xdb
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// render prints a tree one node a line, indented, without times.
func render(n *inspect.Node) string {
	var b strings.Builder
	n.Walk(func(n *inspect.Node, depth int) {
		fmt.Fprintf(&b, "%s%s %s", strings.Repeat("  ", depth), n.Kind, n.Name)
		if n.Combinator != "" {
			fmt.Fprintf(&b, " [%s %s]", n.Combinator, n.Policy)
		}
		if n.Decision != nil {
			fmt.Fprintf(&b, " decided %v winner=%q", n.Decision.Reason, n.Decision.Winner)
		}
		if n.Kind == inspect.NodeBranch || n.Kind == inspect.NodeStep {
			fmt.Fprintf(&b, " #%d %v", n.Index, n.Status)
		}
		if v := n.ValueText(); v != "" {
			fmt.Fprintf(&b, " = %s", v)
		}
		if n.Err != nil {
			fmt.Fprintf(&b, " err=%s(%s)", n.Err.Type, n.Err.Message)
		}
		if len(n.Attempts) > 0 {
			fmt.Fprintf(&b, " attempts=%d", len(n.Attempts))
		}
		for _, c := range n.Corrupt {
			fmt.Fprintf(&b, " CORRUPT(%s)", c.Key)
		}
		b.WriteString("\n")
	})
	return b.String()
}

func TestReadTree(t *testing.T) {
	j := newScanJournal()
	ctx := durable.WithJournal(context.Background(), j, "order/7")
	tries := 0
	_, err := durable.Parallel(ctx, "prices", []durable.Step[int]{
		durable.NewStep("eu", func(ctx context.Context) (int, error) {
			return durable.NewStep("fx", func(context.Context) (int, error) { return 2, nil }).Run(ctx)
		}),
		durable.NewStep("us", func(context.Context) (int, error) {
			tries++
			if tries < 2 {
				return 0, errors.New("flaky")
			}
			return 3, nil
		}, durable.WithRetry(durable.RetryPolicy{MaxAttempts: 3, Backoff: time.Millisecond})),
	}, durable.WithMaxConcurrency(1))
	require.NoError(t, err)
	_, err = durable.Settle(ctx, "notify", []durable.Step[string]{
		durable.NewStep("mail", func(context.Context) (string, error) { return "sent", nil }),
		durable.NewStep("sms", func(context.Context) (string, error) { return "", durable.Permanent(errors.New("no phone")) }),
		durable.NewStep("push", func(context.Context) (string, error) { return "", errors.New("offline") }),
	}, durable.WithMaxConcurrency(1))
	require.NoError(t, err)
	_, err = durable.FanOut(ctx, "sizes", []string{"a", "bb"}, func(_ context.Context, s string) (int, error) {
		if s == "bb" {
			return 0, errors.New("later")
		}
		return len(s), nil
	}, durable.WithMaxConcurrency(1))
	require.Error(t, err)
	_, err = durable.NewStep("receipt", func(context.Context) (string, error) { return "r-1", nil }).Run(ctx)
	require.NoError(t, err)

	tree, err := inspect.Read(context.Background(), j, "order/7")
	require.NoError(t, err)
	require.Equal(t, `execution order/7
  combinator notify [Settle all completed] decided ALL_COMPLETED winner="push"
    branch mail #0 SUCCEEDED = "sent"
    branch sms #1 FAILED err=*errors.errorString(no phone)
    branch push #2 FAILED err=*errors.errorString(offline)
  combinator prices [Parallel tolerated failures 0]
    branch eu #0 SUCCEEDED = 2
      step fx #-1 SUCCEEDED = 2
    branch us #1 SUCCEEDED = 3 attempts=1
  step receipt #-1 SUCCEEDED = "r-1"
  combinator sizes [FanOut tolerated failures 0]
    branch 0 #0 SUCCEEDED = 1
    branch 1 #1 Status(0)
`, render(tree), "branch 1 failed plainly: nothing journaled")

	_, err = inspect.Read(context.Background(), j, "nope")
	require.ErrorIs(t, err, inspect.ErrNoExecution)
	_, err = inspect.Read(context.Background(), struct{ journal.Journal }{journal.NewMemory()}, "order/7")
	require.ErrorContains(t, err, "cannot scan")
}

// A corrupt entry is reported in the tree, never fatal.
func TestReadCorrupt(t *testing.T) {
	j := newScanJournal()
	ctx := durable.WithJournal(context.Background(), j, "e")
	_, err := durable.Parallel(ctx, "p", []durable.Step[int]{
		durable.NewStep("a", func(context.Context) (int, error) { return 1, nil }),
		durable.NewStep("b", func(context.Context) (int, error) { return 2, nil }),
	})
	require.NoError(t, err)
	_, err = j.Put(context.Background(), "e/p/zz", []byte{2, 0, 0, 0, 0, 's', 1})
	require.NoError(t, err)
	tree, err := inspect.Read(context.Background(), j, "e")
	require.NoError(t, err)
	out := render(tree)
	require.Contains(t, out, "CORRUPT(e/p/zz)")
	require.Contains(t, out, "branch b #1 SUCCEEDED = 2")
	var kinds []inspect.EntryKind
	for e, err := range inspect.Entries(context.Background(), j, "e") {
		require.NoError(t, err)
		kinds = append(kinds, e.Kind)
		if e.Kind == inspect.KindCorrupt {
			require.ErrorIs(t, e.Corrupt, durable.ErrCorrupt)
		}
	}
	require.ElementsMatch(t, []inspect.EntryKind{inspect.KindHead, inspect.KindSuccess, inspect.KindSuccess, inspect.KindCorrupt}, kinds)
}
