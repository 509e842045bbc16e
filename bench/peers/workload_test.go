package peers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// processStart is when this process started, near enough: package variables
// are initialised before main runs.
var processStart = time.Now()

// Result is what a step returns: a struct of two ints.
type Result struct {
	I  int
	Sq int
}

// The modes a child runs a system's workload in.
const (
	modeFresh  = "fresh"  // run the execution from nothing
	modeRerun  = "rerun"  // call it again once it has completed
	modeResume = "resume" // finish it after a process was killed half-way
)

// The environment by which the parent tells a child what to run.
const (
	envChild  = "PEERS_CHILD"  // the system to run: a system's name
	envMode   = "PEERS_MODE"   // modeFresh, modeRerun or modeResume
	envN      = "PEERS_N"      // steps
	envCap    = "PEERS_CAP"    // most steps running at once
	envID     = "PEERS_ID"     // the execution's ID
	envPath   = "PEERS_PATH"   // the SQLite file
	envSchema = "PEERS_SCHEMA" // the PostgreSQL schema
	envApp    = "PEERS_APP"    // the PostgreSQL application_name of the child's sessions
	envLog    = "PEERS_LOG"    // the step log, if any: one line per step started
	envKillAt = "PEERS_KILL"   // SIGKILL this process once the log has this many lines
	envLock   = "PEERS_LOCK"   // go-workflows' lock timeouts
	envCPU    = "PEERS_CPU"    // durable: write a CPU profile of the call to this file
)

// childConfig is what a child reads from its environment.
type childConfig struct {
	system, mode string
	n, cap       int
	id           string
	path         string // SQLite file
	url          string // PostgreSQL server
	schema, app  string
	lock         time.Duration
}

// childReport is what a child prints, as JSON after reportPrefix, on stdout.
type childReport struct {
	System string
	Mode   string
	N      int
	// SetupNS is the time from the process's start until the system was ready
	// to run the workload: journal or system database opened and migrated,
	// DBOS launched, go-workflows' worker started.
	SetupNS int64
	// CallNS is the time of the call that runs (or reruns) the execution,
	// until the result is in hand. For go-workflows' fresh and resumed runs
	// it ends when the execution's completion was committed; ClientNS is when
	// the client's GetWorkflowResult, which polls with a backoff of up to a
	// second, returned it.
	CallNS   int64
	ClientNS int64 `json:",omitempty"`
	// TotalNS is the time from the process's start until the result.
	TotalNS int64
	// StepsRun is how many step bodies this process started.
	StepsRun int64
}

const reportPrefix = "PEERS-REPORT "

// --- the step ---

var (
	stepsRun  atomic.Int64
	stepLog   *os.File // nil unless the parent asked for a step log
	logged    atomic.Int64
	killAfter int64 // kill this process once logged reaches it; 0: never
)

// runStep is the body of step i in every system: it counts itself, appends
// "<i>\n" to the step log in one write (O_APPEND: lines never interleave, and
// a line is in the file once the write returns, whatever becomes of the
// process), and returns its result. The step that writes the killAfter-th line
// kills the process with SIGKILL, so that a crash lands at the same point for
// every system whatever its speed.
func runStep(i int) (Result, error) {
	stepsRun.Add(1)
	if stepLog != nil {
		if _, err := stepLog.Write(append(strconv.AppendInt(nil, int64(i), 10), '\n')); err != nil {
			return Result{}, err
		}
		if logged.Add(1) == killAfter {
			if err := syscall.Kill(os.Getpid(), syscall.SIGKILL); err != nil {
				return Result{}, err
			}
			select {} // the signal is on its way
		}
	}
	return Result{I: i, Sq: i * i}, nil
}

// check reports whether res is the result of n steps.
func check(res []Result, n int) error {
	if len(res) != n {
		return fmt.Errorf("%d results, want %d", len(res), n)
	}
	for i, r := range res {
		if r != (Result{I: i, Sq: i * i}) {
			return fmt.Errorf("result %d is %+v", i, r)
		}
	}
	return nil
}

// quietLogger logs warnings and errors to stderr: stdout carries the report.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// --- the child ---

// TestPeersChild runs one system's workload in a child process that TestPeers
// started, and prints a childReport; it is skipped otherwise.
func TestPeersChild(t *testing.T) {
	name := os.Getenv(envChild)
	if name == "" {
		t.Skip("runs only in the child processes of TestPeers")
	}
	sys, ok := systemNamed(name)
	if !ok {
		t.Fatalf("no system named %q", name)
	}
	c, err := readChildConfig()
	if err != nil {
		t.Fatal(err)
	}
	if p := os.Getenv(envLog); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		stepLog = f
		if k := os.Getenv(envKillAt); k != "" {
			if killAfter, err = strconv.ParseInt(k, 10, 64); err != nil {
				t.Fatal(err)
			}
		}
	}
	rep, err := sys.run(context.Background(), c)
	if err != nil {
		t.Fatalf("%s %s: %v", name, c.mode, err)
	}
	rep.System, rep.Mode, rep.N, rep.StepsRun = name, c.mode, c.n, stepsRun.Load()
	out, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s%s\n", reportPrefix, out)
}

func readChildConfig() (childConfig, error) {
	c := childConfig{
		system: os.Getenv(envChild),
		mode:   os.Getenv(envMode),
		id:     os.Getenv(envID),
		path:   os.Getenv(envPath),
		url:    os.Getenv("TEST_DATABASE_URL"),
		schema: os.Getenv(envSchema),
		app:    os.Getenv(envApp),
	}
	var errs []error
	var err error
	c.n, err = strconv.Atoi(os.Getenv(envN))
	errs = append(errs, err)
	c.cap, err = strconv.Atoi(os.Getenv(envCap))
	errs = append(errs, err)
	if l := os.Getenv(envLock); l != "" {
		c.lock, err = time.ParseDuration(l)
		errs = append(errs, err)
	}
	switch c.mode {
	case modeFresh, modeRerun, modeResume:
	default:
		errs = append(errs, fmt.Errorf("unknown mode %q", c.mode))
	}
	return c, errors.Join(errs...)
}

// profileCall starts a CPU profile, at 1 kHz, written to the file that
// PEERS_CPU names, if any, and returns the function that stops it.
func profileCall() (stop func() error, err error) {
	path := os.Getenv(envCPU)
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	// A call takes tens of milliseconds: sample ten times as often as the
	// default. (StartCPUProfile then says, on stderr, that it cannot set the
	// rate, and keeps this one.)
	runtime.SetCPUProfileRate(1000)
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// finish fills in a report's times: setup ended at ready, the call started
// then and ended at done.
func finish(ready, done time.Time) childReport {
	return childReport{
		SetupNS: ready.Sub(processStart).Nanoseconds(),
		CallNS:  done.Sub(ready).Nanoseconds(),
		TotalNS: done.Sub(processStart).Nanoseconds(),
	}
}
