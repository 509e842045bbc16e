// Command resume processes a batch of orders durably, dies part-way through its
// first run, and picks up where it left off on the next.
//
//	go run . -reset   # fresh journal: a worker process dies part-way, then the job resumes
//	go run .          # again: the batch is complete, everything replays
//
// On a fresh journal the program starts itself as a worker process (-once),
// which dies part-way through the batch, then runs the job again in its own
// process, as a queue would retry it, and that run resumes from the journal.
// With -once it runs a single pass, whatever the journal holds.
//
// Each order is one branch of [durable.Settle], four at a time, under a policy
// that tolerates a quarter of the orders failing. A branch runs two steps with
// [durable.Step.Run]: it charges the card, then reserves the stock. Every
// finished step and every finished order is checkpointed in an SQLite file, so
// the run that follows a crash neither charges a card twice nor forgets an
// order: it replays what the journal holds and runs only the rest.
//
// The first run on a fresh journal kills itself with os.Exit(3) from inside a
// branch once -crash-after orders have finished, as a kill -9 or a power cut
// would end it: no deferred call runs and the journal is not closed.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal/sqlitejournal"
)

const (
	executionID = "orders-2025-06-01" // the job's identity in the journal
	numOrders   = 40
	workers     = 4
	tolerated   = 0.25 // the share of orders that may fail
)

// kill ends the process at once, as if it had been killed. Tests replace it
// with a function that returns, and the run then stops as a dead process would.
var kill = func() { os.Exit(3) }

// errKilled ends a run whose process was killed; only tests see it, since
// kill does not return in the real program.
var errKilled = errors.New("the process was killed")

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "resume:", err)
		os.Exit(1)
	}
}

// run is the whole program, with its arguments and output passed in.
func run(args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("resume", flag.ContinueOnError)
	flags.SetOutput(stdout)
	dbPath := flags.String("db", "./resume-demo.db", "the journal `file`")
	crashAfter := flags.Int("crash-after", numOrders/2,
		"on a fresh journal, die once `n` orders have finished (0: never)")
	reset := flags.Bool("reset", false, "delete the journal file first, so that the run starts from scratch")
	once := flags.Bool("once", false, "run a single pass in this process (on a fresh journal it dies part-way)")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flags.Args())
	}
	if *crashAfter < 0 {
		return fmt.Errorf("-crash-after %d: must not be negative", *crashAfter)
	}
	if *reset {
		if err := resetJournal(stdout, *dbPath); err != nil {
			return err
		}
	}
	if _, err := os.Stat(*dbPath); !*once && *crashAfter > 0 && errors.Is(err, fs.ErrNotExist) {
		if err := crashingWorker(stdout, *dbPath, *crashAfter); err != nil {
			return err
		}
	}
	return pass(stdout, *dbPath, *crashAfter)
}

// crashingWorker runs the first pass in a child process, which dies part-way.
func crashingWorker(stdout io.Writer, dbPath string, crashAfter int) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "=== Run 1, in a worker process that will die part-way\n\n")
	cmd := exec.Command(exe, "-once", "-db", dbPath, "-crash-after", strconv.Itoa(crashAfter))
	cmd.Stdout, cmd.Stderr = stdout, stdout
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return fmt.Errorf("the worker process was expected to die, but: %v", err)
	}
	fmt.Fprintf(stdout, "\nThe worker process died (%v). The job is retried:\n\n=== Run 2, resuming from the journal\n\n", exit)
	return nil
}

// pass runs the job once in this process.
func pass(stdout io.Writer, dbPath string, crashAfter int) error {
	j, err := sqlitejournal.Open(dbPath)
	if err != nil {
		return err
	}
	defer j.Close()

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	ctx = durable.WithJournal(ctx, j, executionID)

	d := &demo{out: stdout, cancel: cancel, crashAfter: crashAfter, stepsRun: make(map[string][]string)}

	// The batch itself is a step: a rerun processes the orders the first run
	// loaded, even if the source has changed since. Its Fn runs only on a
	// fresh journal.
	orders, err := durable.NewStep("load-orders", func(context.Context) ([]order, error) {
		d.fresh = true
		return loadOrders(), nil
	}).Run(ctx)
	if err != nil {
		return err
	}

	fmt.Fprintf(d.out, "Durable resume demo: %d orders, %d at a time, journal %s.\n", len(orders), workers, dbPath)
	fmt.Fprintf(d.out, "Each order is a branch of durable.Settle with two checkpointed steps, charge\n")
	fmt.Fprintf(d.out, "and reserve; the batch tolerates %.0f%% failed orders.\n\n", tolerated*100)
	switch {
	case d.fresh && d.crashAfter > 0:
		fmt.Fprintf(d.out, "Fresh journal: once %d orders have finished, the next order to reach its\n", d.crashAfter)
		fmt.Fprintf(d.out, "reservation kills this run (os.Exit(3)), as a kill -9 would; orders still\n")
		fmt.Fprintf(d.out, "in flight may finish, and be journaled, before it does.\n")
	case d.fresh:
		fmt.Fprintf(d.out, "Fresh journal, no crash: every order runs now.\n")
	default:
		fmt.Fprintf(d.out, "The journal holds an earlier run: what finished replays, the rest runs now.\n")
		fmt.Fprintf(d.out, "(replayed: nothing ran, the journal held it all; resumed: the charge\n")
		fmt.Fprintf(d.out, "replayed and the reservation ran; ran now: every step ran.)\n")
	}

	steps := make([]durable.Step[receipt], len(orders))
	for i, o := range orders {
		steps[i] = durable.NewStep(o.ID, func(ctx context.Context) (receipt, error) {
			return d.process(ctx, o)
		})
	}
	if isTerminal(os.Stderr) {
		// A live progress line, redrawn at most every 100 ms.
		ctx = durable.WithObserver(ctx, durable.Progress(100*time.Millisecond, func(p durable.ProgressSnapshot) {
			if p.Combinator != "Settle" {
				return // the steps inside each order
			}
			fmt.Fprintf(os.Stderr, "\r  [%d/%d orders: %d ran, %d replayed, %d running, %.0f/s]  ",
				p.Succeeded+p.Failed+p.Replayed, p.Total, p.Succeeded+p.Failed, p.Replayed, p.Running, p.Rate)
			if p.Done {
				fmt.Fprintln(os.Stderr)
			}
		}))
	}
	res, err := durable.Settle(ctx, "process-orders", steps,
		durable.WithMaxConcurrency(workers),
		durable.WithCompletion(durable.ToleratedFailureRatio(tolerated)))
	if d.isKilled() {
		return errKilled
	}
	if err != nil {
		return err
	}
	d.report(orders, res)
	return nil
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// resetJournal deletes the journal file and its write-ahead log.
func resetJournal(w io.Writer, path string) error {
	found := false
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		err := os.Remove(p)
		switch {
		case err == nil:
			found = found || p == path
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}
	if found {
		fmt.Fprintf(w, "Deleted %s: the next run starts from scratch.\n", path)
	} else {
		fmt.Fprintf(w, "No journal at %s: the next run starts from scratch.\n", path)
	}
	return nil
}

// An order is one line of the batch.
type order struct {
	ID    string `json:"id"`
	Card  string `json:"card"` // the card's last four digits
	Item  string `json:"item"`
	Qty   int    `json:"qty"`
	Cents int    `json:"cents"`
}

// charge and reservation are what the two steps return, and receipt what an
// order returns. The journal stores them as JSON.
type charge struct {
	ID    string `json:"id"`
	Cents int    `json:"cents"`
}

type reservation struct {
	Item      string `json:"item"`
	Qty       int    `json:"qty"`
	Warehouse string `json:"warehouse"`
}

type receipt struct {
	Charge      charge      `json:"charge"`
	Reservation reservation `json:"reservation"`
}

// declinedCard is the card number whose charges the simulated payment
// provider declines.
const declinedCard = "0002"

// loadOrders makes up the batch: the same orders every time, four of which
// pay with a card that is declined.
func loadOrders() []order {
	items := []string{"desk lamp", "kettle", "wool scarf", "notebook", "teapot", "umbrella", "headphones"}
	orders := make([]order, numOrders)
	for i := range orders {
		card := fmt.Sprintf("%04d", 1000+(i*7307)%9000)
		if i%9 == 7 {
			card = declinedCard
		}
		orders[i] = order{
			ID:    fmt.Sprintf("order-%02d", i+1),
			Card:  card,
			Item:  items[i%len(items)],
			Qty:   1 + i%3,
			Cents: 500 + (i*7919)%9500,
		}
	}
	return orders
}

// demo holds what one run observes, for its report.
type demo struct {
	out        io.Writer
	cancel     context.CancelCauseFunc
	crashAfter int  // orders to finish before dying; 0: never
	fresh      bool // the journal was empty: the orders were loaded now

	mu       sync.Mutex
	finished int                 // orders that finished in this run
	running  []string            // orders started and not finished
	stepsRun map[string][]string // order ID -> the steps whose Fn ran in this run
	killed   bool
}

// process is one order's branch: charge the card, then reserve the stock.
// Each step is checkpointed when it finishes, so a branch that was
// interrupted between the two does not charge the card again when it reruns.
func (d *demo) process(ctx context.Context, o order) (receipt, error) {
	d.started(o.ID)
	ch, err := durable.NewStep("charge", func(ctx context.Context) (charge, error) {
		d.stepRan(o.ID, "charge")
		return chargeCard(ctx, o)
	}).Run(ctx)
	if err != nil {
		d.done(o, receipt{}, err)
		return receipt{}, err
	}

	if d.dieHere(o.ID) {
		kill()
		// Only in tests does kill return: stop the run as a dead process would.
		d.cancel(errKilled)
		return receipt{}, errKilled
	}

	res, err := durable.NewStep("reserve", func(ctx context.Context) (reservation, error) {
		d.stepRan(o.ID, "reserve")
		return reserveStock(ctx, o)
	}).Run(ctx)
	if err != nil {
		d.done(o, receipt{}, err)
		return receipt{}, err
	}
	r := receipt{Charge: ch, Reservation: res}
	d.done(o, r, nil)
	return r, nil
}

// chargeCard is a simulated payment provider. A declined card is a permanent
// failure: it is journaled, and a rerun does not try the card again.
func chargeCard(ctx context.Context, o order) (charge, error) {
	if err := work(ctx, time.Duration(20+o.Cents%25)*time.Millisecond); err != nil {
		return charge{}, err
	}
	if o.Card == declinedCard {
		return charge{}, durable.Permanent(fmt.Errorf("card ending %s declined", o.Card))
	}
	return charge{ID: "ch_" + strings.TrimPrefix(o.ID, "order-") + o.Card, Cents: o.Cents}, nil
}

// reserveStock is a simulated inventory service.
func reserveStock(ctx context.Context, o order) (reservation, error) {
	if err := work(ctx, time.Duration(10+o.Cents%15)*time.Millisecond); err != nil {
		return reservation{}, err
	}
	warehouses := []string{"Lyon", "Porto", "Gdansk"}
	return reservation{Item: o.Item, Qty: o.Qty, Warehouse: warehouses[len(o.Item)%len(warehouses)]}, nil
}

// work stands for a call to another service: it takes d, or until ctx ends.
func work(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (d *demo) started(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running = append(d.running, id)
}

func (d *demo) stepRan(id, step string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stepsRun[id] = append(d.stepsRun[id], step)
}

// done records that order o finished in this run and, on a fresh journal,
// prints it as it happens. After the kill, a dead process prints nothing.
func (d *demo) done(o order, r receipt, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running = slices.DeleteFunc(d.running, func(id string) bool { return id == o.ID })
	if d.killed {
		return
	}
	d.finished++
	if d.fresh {
		fmt.Fprintf(d.out, "  %s  %-8s  %s\n", o.ID, d.sourceLocked(o.ID, false), outcome(r, err))
	}
}

// dieHere reports whether the process must die now, in order id, between
// its two steps; if so, it says what the run did before dying.
func (d *demo) dieHere(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.fresh || d.killed || d.crashAfter == 0 || d.finished < d.crashAfter {
		return false
	}
	d.killed = true
	others := slices.DeleteFunc(slices.Clone(d.running), func(o string) bool { return o == id })
	inFlight := "No other order was in flight."
	if len(others) > 0 {
		inFlight = "Also in flight: " + strings.Join(others, ", ") + "."
	}
	fmt.Fprintf(d.out, "\nKILLED: os.Exit(3) in %s, after its charge and before its reservation.\n", id)
	fmt.Fprintf(d.out, "%d orders had finished in this run; their steps are in the journal, and so is the\n", d.finished)
	fmt.Fprintf(d.out, "charge of %s. %s\n", id, inFlight)
	fmt.Fprintf(d.out, "The next run of the job resumes from the journal.\n")
	return true
}

func (d *demo) isKilled() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.killed
}

// sourceLocked says where an order's outcome came from in this run: "replayed"
// when none of its steps ran (the journal held them all), "ran now" when they
// all ran, "resumed" when the charge replayed and the reservation ran. Called
// with d.mu held.
func (d *demo) sourceLocked(id string, replayed bool) string {
	ran := d.stepsRun[id]
	switch {
	case replayed || len(ran) == 0:
		return "replayed"
	case ran[0] == "charge":
		return "ran now"
	default:
		return "resumed"
	}
}

// outcome describes an order's result in a few words.
func outcome(r receipt, err error) string {
	if err != nil {
		return "FAILED: " + err.Error()
	}
	return fmt.Sprintf("charged %s, reserved %d x %s (%s)",
		dollars(r.Charge.Cents), r.Reservation.Qty, r.Reservation.Item, r.Reservation.Warehouse)
}

func dollars(cents int) string { return fmt.Sprintf("$%d.%02d", cents/100, cents%100) }

// report prints, on a resumed run, where each order's outcome came from, and
// the result of the batch.
func (d *demo) report(orders []order, res *durable.BatchResult[receipt]) {
	d.mu.Lock()
	defer d.mu.Unlock()
	counts := map[string]int{}
	for i, it := range res.Items {
		how := d.sourceLocked(orders[i].ID, it.Replayed)
		counts[how]++
		if !d.fresh {
			fmt.Fprintf(d.out, "  %s  %-8s  %s\n", it.Name, how, outcome(it.Value, it.Err))
		}
	}

	total := 0
	for _, v := range res.Values() {
		total += v.Charge.Cents
	}
	var failed []string
	for _, it := range res.Failed() {
		failed = append(failed, it.Name)
	}
	fmt.Fprintf(d.out, "\nResult: %v: %d succeeded, %d failed, %d cancelled, %d not started.\n",
		res.Reason, res.SuccessCount(), res.FailureCount(), len(res.Cancelled()), len(res.NotStarted()))
	if len(failed) > 0 {
		fmt.Fprintf(d.out, "Failed: %s.\n", strings.Join(failed, ", "))
	}
	fmt.Fprintf(d.out, "Charged %s in total. Result fingerprint: %s, the same on every run.\n",
		dollars(total), fingerprint(res))
	fmt.Fprintf(d.out, "This run: %d orders replayed from the journal, %d resumed, %d ran now.\n",
		counts["replayed"], counts["resumed"], counts["ran now"])
}

// fingerprint digests everything a result holds except where it came from, so
// that runs that reached the same result print the same fingerprint.
func fingerprint(res *durable.BatchResult[receipt]) string {
	h := sha256.New()
	fmt.Fprintf(h, "%v\n", res.Reason)
	for _, it := range res.Items {
		v, _ := json.Marshal(it.Value)
		msg := ""
		if it.Err != nil {
			msg = it.Err.Error()
		}
		fmt.Fprintf(h, "%d %q %v %s %q\n", it.Index, it.Name, it.Status, v, msg)
	}
	return fmt.Sprintf("%x", h.Sum(nil)[:6])
}
