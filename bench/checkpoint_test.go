package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// outcome is the value each checkpointed branch returns: a small JSON object.
type outcome struct {
	Status string `json:"status"`
	Item   int    `json:"item"`
}

func produce(_ context.Context, i int) (outcome, error) {
	return outcome{Status: "ok", Item: i}, nil
}

// checkpointsPerRound is the number of branches, and so of checkpoints, in one
// round of BenchmarkCheckpoint at concurrency conc: at least four waves of conc,
// and at least 256.
func checkpointsPerRound(conc int) int { return max(256, 4*conc) }

// BenchmarkCheckpoint measures checkpoint throughput through the engine. Each
// iteration runs three rounds, in rotating order, of max(256, 4*conc) no-op
// branches at most conc at a time, each writing one checkpoint:
//
//   - group: durable.FanOut with WithMaxConcurrency(conc) over a journaled
//     context, the journal with group commit (its default);
//   - txper: the same with WithGroupCommit(false), one transaction per
//     checkpoint;
//   - naive: no engine and no journal, errgroup with SetLimit(conc) and one
//     plain INSERT (its own transaction) per branch through database/sql.
//
// Every round of the journal modes uses a new execution ID, so every branch
// runs. The metrics are checkpoints per second for each mode (the head record
// each FanOut writes is not counted) and the ratios group/naive and
// group/txper, measured in the same loop. SQLite files live in b.TempDir with
// the default synchronous = FULL; PostgreSQL runs when TEST_DATABASE_URL is
// set, each benchmark in schemas of its own.
func BenchmarkCheckpoint(b *testing.B) {
	for _, be := range backends {
		for _, conc := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("backend=%s/conc=%d", be.name, conc), func(b *testing.B) {
				benchmarkCheckpoint(b, be, conc)
			})
		}
	}
}

func benchmarkCheckpoint(b *testing.B, be backend, conc int) {
	n := checkpointsPerRound(conc)
	in := items(n)
	group := be.open(b, "group_journal", true)
	txper := be.open(b, "txper_journal", false)
	db, insert := be.naive(b)

	round := 0
	engine := func(j journal.Journal) func() {
		return func() {
			round++
			checkpointRound(b, j, round, in, conc)
		}
	}
	naive := func() {
		round++
		prefix := "round-" + strconv.Itoa(round) + "/"
		g, ctx := errgroup.WithContext(bg)
		g.SetLimit(conc)
		for i := range in {
			g.Go(func() error {
				v, err := produce(ctx, i)
				if err != nil {
					return err
				}
				data, err := json.Marshal(v)
				if err != nil {
					return err
				}
				_, err = db.ExecContext(ctx, insert, []byte(prefix+strconv.Itoa(i)), data)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}

	var r rotation
	r.add("group", engine(group))
	r.add("txper", engine(txper))
	r.add("naive", naive)
	r.loop(b)
	b.ReportMetric(r.rate("group", n), "group-ckpt/s")
	b.ReportMetric(r.rate("txper", n), "txper-ckpt/s")
	b.ReportMetric(r.rate("naive", n), "naive-ckpt/s")
	b.ReportMetric(r.rate("group", n)/r.rate("naive", n), "group/naive")
	b.ReportMetric(r.rate("group", n)/r.rate("txper", n), "group/txper")
}

// BenchmarkGroupCommit runs only the group-commit rounds of
// BenchmarkCheckpoint, at concurrency 256: one FanOut of 1024 checkpointing
// branches per iteration, each with a new execution ID, against one journal
// that keeps growing. It is the one to profile, and to see whether the
// throughput depends on the number of rows already in the journal.
func BenchmarkGroupCommit(b *testing.B) {
	const conc = 256
	n := checkpointsPerRound(conc)
	in := items(n)
	for _, be := range backends {
		b.Run("backend="+be.name, func(b *testing.B) {
			j := be.open(b, "group_journal", true)
			round := 0
			for b.Loop() {
				round++
				checkpointRound(b, j, round, in, conc)
			}
			b.ReportMetric(float64(round*n)/b.Elapsed().Seconds(), "ckpt/s")
		})
	}
}

// checkpointRound runs one round of the engine's group commit: a FanOut of in,
// at most conc at a time, each branch writing one checkpoint to j under a new
// execution ID.
func checkpointRound(b *testing.B, j journal.Journal, round int, in []int, conc int) {
	ctx := durable.WithJournal(bg, j, "round-"+strconv.Itoa(round))
	res, err := durable.FanOut(ctx, "checkpoint", in, produce, durable.WithMaxConcurrency(conc))
	if err != nil {
		b.Fatal(err)
	}
	sink = res
}
