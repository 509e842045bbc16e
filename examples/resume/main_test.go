package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestResume kills the first run between two steps of an order, resumes it,
// runs it a third time, and compares each with a run that never crashed.
func TestResume(t *testing.T) {
	dir := t.TempDir()
	clean := runDemo(t, "-db", filepath.Join(dir, "clean.db"), "-crash-after", "0")
	require.Equal(t, numOrders, clean.count("ran now"), clean.out)
	require.Contains(t, clean.out, "Result: ALL_COMPLETED: 36 succeeded, 4 failed, 0 cancelled, 0 not started.")

	// The first run on a fresh journal dies in an order, after its charge.
	kills := 0
	defer func(k func()) { kill = k }(kill)
	kill = func() { kills++ }
	db := filepath.Join(dir, "resume.db")
	var buf bytes.Buffer
	err := run([]string{"-once", "-db", db}, &buf)
	require.ErrorIs(t, err, errKilled)
	require.Equal(t, 1, kills)
	first := parse(t, buf.String())
	m := regexp.MustCompile(`KILLED: os\.Exit\(3\) in (order-\d+),`).FindStringSubmatch(first.out)
	require.NotNil(t, m, first.out)
	killedIn := m[1]
	m = regexp.MustCompile(`\n(\d+) orders had finished in this run;`).FindStringSubmatch(first.out)
	require.NotNil(t, m, first.out)
	finished, _ := strconv.Atoi(m[1])
	require.Len(t, first.orders, finished, "one line per finished order")
	require.GreaterOrEqual(t, finished, numOrders/2)
	require.Less(t, finished, numOrders)
	inFlight := map[string]bool{}
	if m := regexp.MustCompile(`Also in flight: (.*)\.`).FindStringSubmatch(first.out); m != nil {
		for _, id := range strings.Split(m[1], ", ") {
			inFlight[id] = true
		}
	}
	require.LessOrEqual(t, len(inFlight), workers-1)
	require.Empty(t, first.result, "a killed run has no result")

	// The second run replays every finished order, resumes the killed one
	// after its charge, and runs the orders the first run had not started.
	second := runDemo(t, "-db", db)
	require.Len(t, second.orders, numOrders)
	for id, how := range second.orders {
		switch {
		case first.orders[id] != "":
			require.Equal(t, "replayed", how, "%s finished in the first run", id)
		case id == killedIn:
			require.Equal(t, "resumed", how, "%s was killed after its charge", id)
		case inFlight[id]:
			// Killed at any point: any of the three.
		default:
			require.Equal(t, "ran now", how, "%s had not started", id)
		}
	}
	require.Equal(t, finished, second.count("replayed")-second.countIn("replayed", inFlight))
	require.Equal(t, clean.result, second.result, "the resumed result is the crash-free one")

	// The third run replays everything and reaches the same result.
	third := runDemo(t, "-db", db)
	require.Equal(t, numOrders, third.count("replayed"), third.out)
	require.Equal(t, clean.result, third.result)
	require.Contains(t, third.out, "This run: 40 orders replayed from the journal, 0 resumed, 0 ran now.")
	require.Equal(t, 1, kills, "only a fresh journal crashes")
}

func TestReset(t *testing.T) {
	db := filepath.Join(t.TempDir(), "j.db")
	runDemo(t, "-db", db, "-crash-after", "0")
	_, err := os.Stat(db)
	require.NoError(t, err)

	var buf bytes.Buffer
	require.NoError(t, run([]string{"-once", "-crash-after", "0", "-db", db, "-reset"}, &buf))
	require.Contains(t, buf.String(), "Deleted")
	again := parse(t, buf.String())
	require.Equal(t, numOrders, again.count("ran now"), "a reset journal starts from scratch")
}

func TestBadFlags(t *testing.T) {
	var buf bytes.Buffer
	require.Error(t, run([]string{"-crash-after", "-1"}, &buf))
	require.Error(t, run([]string{"extra"}, &buf))
	require.Error(t, run([]string{"-nope"}, &buf))
}

// output is a run's printed output, parsed.
type output struct {
	out    string
	orders map[string]string // order ID -> "replayed", "resumed" or "ran now"
	result string            // the result's lines, fingerprint included
}

func (o output) count(how string) int { return o.countIn(how, nil) }

// countIn counts the orders reported as how; with ids, only those among ids.
func (o output) countIn(how string, ids map[string]bool) int {
	n := 0
	for id, h := range o.orders {
		if h == how && (ids == nil || ids[id]) {
			n++
		}
	}
	return n
}

var orderLine = regexp.MustCompile(`(?m)^  (order-\d+)  (replayed|resumed |ran now ) `)

func parse(t *testing.T, out string) output {
	t.Helper()
	o := output{out: out, orders: map[string]string{}}
	for _, m := range orderLine.FindAllStringSubmatch(out, -1) {
		require.NotContains(t, o.orders, m[1], "%s reported twice:\n%s", m[1], out)
		o.orders[m[1]] = strings.TrimSpace(m[2])
	}
	if i := strings.Index(out, "\nResult: "); i >= 0 {
		o.result, _, _ = strings.Cut(out[i+1:], "\nThis run:")
	}
	return o
}

func runDemo(t *testing.T, args ...string) output {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, run(append([]string{"-once"}, args...), &buf), buf.String())
	return parse(t, buf.String())
}
