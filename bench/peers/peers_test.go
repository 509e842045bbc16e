package peers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/durable-go/durable/journal/pgjournal"
	"github.com/durable-go/durable/journal/sqlitejournal"
)

var (
	flagN       = flag.String("peers.n", "", "comma-separated step counts to measure, e.g. 1000,10000; empty skips TestPeers")
	flagRounds  = flag.Int("peers.rounds", 3, "rounds: each measures every system once, in alternating order")
	flagCap     = flag.Int("peers.cap", 64, "most steps running at once")
	flagSystems = flag.String("peers.systems", "", "comma-separated systems (durable-pg, dbos, durable-sqlite, go-workflows); empty: all")
	flagMeasure = flag.String("peers.measure", "fresh,rerun,crash", "comma-separated measurements: fresh, rerun, crash")
	flagLock    = flag.Duration("peers.gwlock", 10*time.Second, "go-workflows' workflow and activity lock timeouts")
	flagCPU     = flag.String("peers.cpuprofile", "", "directory where durable's fresh runs and reruns write a CPU profile of their call")
)

// A system is one contender: how a child runs the workload, and how the
// parent reads which steps' results a trial's store holds.
type system struct {
	name  string // as in -peers.systems
	title string // as in the table
	store string // "SQLite" or "PostgreSQL"
	run   func(context.Context, childConfig) (childReport, error)
	// stored returns the steps whose result the trial's store holds; it runs
	// in the parent, with no child running.
	stored func(context.Context, *trial) (map[int]bool, error)
	// against names the durable system a peer is compared with, on the same
	// store; "" for durable itself.
	against string
}

var systems = []system{
	{
		name: "durable-pg", title: "durable + pgjournal", store: "PostgreSQL",
		run: durableRun(openPGJournal),
		stored: func(ctx context.Context, tr *trial) (map[int]bool, error) {
			j, err := pgjournal.Open(ctx, tr.url, pgjournal.WithTable(pgTable(tr.schema)))
			if err != nil {
				return nil, err
			}
			defer j.Close()
			return durableStored(ctx, j, tr.id)
		},
	},
	{
		name: "dbos", title: "DBOS Transact", store: "PostgreSQL", against: "durable-pg",
		run: dbosRun,
		stored: func(ctx context.Context, tr *trial) (map[int]bool, error) {
			return dbosStored(ctx, tr.url, tr.schema, tr.id)
		},
	},
	{
		name: "durable-sqlite", title: "durable + sqlitejournal", store: "SQLite",
		run: durableRun(openSQLiteJournal),
		stored: func(ctx context.Context, tr *trial) (map[int]bool, error) {
			j, err := sqlitejournal.Open(tr.path)
			if err != nil {
				return nil, err
			}
			defer j.Close()
			return durableStored(ctx, j, tr.id)
		},
	},
	{
		name: "go-workflows", title: "go-workflows", store: "SQLite", against: "durable-sqlite",
		run: gwRun,
		stored: func(ctx context.Context, tr *trial) (map[int]bool, error) {
			return gwStored(ctx, tr.path)
		},
	},
}

func systemNamed(name string) (system, bool) {
	for _, s := range systems {
		if s.name == name {
			return s, true
		}
	}
	return system{}, false
}

// peerVersions are the versions of the peers' modules that go.mod requires
// (TestPeerVersions checks them): a test binary carries no module versions.
var peerVersions = map[string]string{
	"dbos":         "github.com/dbos-inc/dbos-transact-golang v1.8.0",
	"go-workflows": "github.com/cschleiden/go-workflows v1.2.0",
}

// titleWithVersion names a system in the table, with the peer's version.
func (s system) titleWithVersion() string {
	if v := peerVersions[s.name]; v != "" {
		return s.title + " " + v[strings.LastIndex(v, " ")+1:]
	}
	return s.title
}

func TestPeerVersions(t *testing.T) {
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range peerVersions {
		if !strings.Contains(string(mod), "\t"+v+"\n") {
			t.Errorf("go.mod does not require %s", v)
		}
	}
}

// A trial is one execution of one system: its store, and what its children
// are told.
type trial struct {
	sys    system
	n, cap int
	lock   time.Duration
	id     string // the execution's ID
	dir    string // the trial's files: SQLite database, step logs
	path   string // the SQLite file
	url    string // the PostgreSQL server
	schema string // the PostgreSQL schema
	app    string // the application_name of the children's PostgreSQL sessions
}

// newTrial prepares an empty store for an execution of sys. The caller must
// call the returned cleanup, which removes it.
func newTrial(t *testing.T, sys system, n, limit int, url string) (*trial, func()) {
	t.Helper()
	tok := fmt.Sprintf("%016x", rand.Uint64())
	dir, err := os.MkdirTemp("", "peers-"+sys.name+"-")
	if err != nil {
		t.Fatal(err)
	}
	tr := &trial{
		sys: sys, n: n, cap: limit, lock: *flagLock,
		id:     "peers-" + tok,
		dir:    dir,
		path:   filepath.Join(dir, "store.db"),
		url:    url,
		schema: "peers_" + tok,
		app:    "peers-" + tok,
	}
	cleanup := func() { os.RemoveAll(dir) }
	if sys.store == "PostgreSQL" {
		if sys.name == "durable-pg" { // pgjournal's Migrate creates a table, not a schema
			pgExec(t, url, "CREATE SCHEMA "+pgx.Identifier{tr.schema}.Sanitize())
		}
		cleanup = func() {
			pgExec(t, url, "DROP SCHEMA IF EXISTS "+pgx.Identifier{tr.schema}.Sanitize()+" CASCADE")
			os.RemoveAll(dir)
		}
	}
	return tr, cleanup
}

// childRun is what a child process did.
type childRun struct {
	report childReport
	wall   time.Duration // from exec to exit, as the parent saw it
	killed bool          // ended by SIGKILL
}

// runChild runs the trial's system in mode in a child process, with step log
// logPath unless it is "" and, unless killAt is 0, SIGKILL once the log has
// killAt lines.
func (tr *trial) runChild(mode, logPath string, killAt int) (childRun, error) {
	return tr.runChildProfiled(mode, logPath, killAt, "")
}

// runChildProfiled is runChild, with the child's call profiled to the file
// cpu unless it is "".
func (tr *trial) runChildProfiled(mode, logPath string, killAt int, cpu string) (childRun, error) {
	exe, err := os.Executable()
	if err != nil {
		return childRun{}, err
	}
	killStr := ""
	if killAt > 0 {
		killStr = strconv.Itoa(killAt)
	}
	cmd := exec.Command(exe, "-test.run=^TestPeersChild$", "-test.count=1", "-test.timeout=2h")
	cmd.Env = append(os.Environ(),
		envChild+"="+tr.sys.name,
		envMode+"="+mode,
		envN+"="+strconv.Itoa(tr.n),
		envCap+"="+strconv.Itoa(tr.cap),
		envID+"="+tr.id,
		envPath+"="+tr.path,
		envSchema+"="+tr.schema,
		envApp+"="+tr.app,
		envLog+"="+logPath,
		envKillAt+"="+killStr,
		envLock+"="+tr.lock.String(),
		"TEST_DATABASE_URL="+tr.url,
		envCPU+"="+cpu,
	)
	dieWithParent(cmd)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	run := childRun{wall: time.Since(start)}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		run.killed = true
		return run, nil
	}
	if err != nil {
		return run, fmt.Errorf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", tr.sys.name, mode, err, tail(stdout.String()), tail(stderr.String()))
	}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if js, ok := strings.CutPrefix(sc.Text(), reportPrefix); ok {
			err := json.Unmarshal([]byte(js), &run.report)
			return run, err
		}
	}
	return run, fmt.Errorf("%s %s printed no report\nstderr:\n%s", tr.sys.name, mode, tail(stderr.String()))
}

// tail returns the end of a child's output.
func tail(s string) string {
	const max = 4000
	if len(s) > max {
		return "…" + s[len(s)-max:]
	}
	return s
}

// waitSessions waits until no PostgreSQL session of the trial's children is
// left: a killed child's transactions are rolled back, or committed, once its
// sessions end, and only then does the store say what the crash left.
func (tr *trial) waitSessions(ctx context.Context) error {
	if tr.sys.store != "PostgreSQL" {
		return nil
	}
	conn, err := pgx.Connect(ctx, tr.url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(time.Minute)
	for {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, tr.app).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d sessions of %s still open after a minute", n, tr.app)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// crashOutcome is what a crash-resume measured.
type crashOutcome struct {
	resume        childRun
	ranBeforeKill int // lines the killed process logged
	stored        int // steps whose result was stored when it died
	twice         int // steps that ran more than once, over both processes
	twiceStored   int // steps that ran again although their result was stored
}

// crash runs the trial's execution in a child that is killed with SIGKILL
// once half of the steps have started, reads which results the store holds,
// then finishes the execution in a new child and compares the two processes'
// step logs.
func (tr *trial) crash(ctx context.Context) (crashOutcome, error) {
	log1, log2 := filepath.Join(tr.dir, "steps-1.log"), filepath.Join(tr.dir, "steps-2.log")
	first, err := tr.runChild(modeFresh, log1, tr.n/2)
	if err != nil {
		return crashOutcome{}, err
	}
	if !first.killed {
		return crashOutcome{}, fmt.Errorf("%s: the first run finished before it was killed", tr.sys.name)
	}
	if err := tr.waitSessions(ctx); err != nil {
		return crashOutcome{}, err
	}
	stored, err := tr.sys.stored(ctx, tr)
	if err != nil {
		return crashOutcome{}, fmt.Errorf("%s: reading the store: %w", tr.sys.name, err)
	}
	second, err := tr.runChild(modeResume, log2, 0)
	if err != nil {
		return crashOutcome{}, err
	}
	if second.killed {
		return crashOutcome{}, fmt.Errorf("%s: the resumed run was killed", tr.sys.name)
	}
	ran1, err := readStepLog(log1, tr.n)
	if err != nil {
		return crashOutcome{}, err
	}
	ran2, err := readStepLog(log2, tr.n)
	if err != nil {
		return crashOutcome{}, err
	}
	out := crashOutcome{resume: second, stored: len(stored)}
	for i := range tr.n {
		out.ranBeforeKill += ran1[i]
		switch {
		case ran1[i]+ran2[i] == 0:
			return out, fmt.Errorf("%s: step %d never ran", tr.sys.name, i)
		case stored[i] && ran1[i] == 0:
			return out, fmt.Errorf("%s: step %d was stored by a process that did not run it", tr.sys.name, i)
		}
		if ran1[i]+ran2[i] > 1 {
			out.twice++
		}
		if stored[i] && ran2[i] > 0 {
			out.twiceStored++
		}
	}
	return out, nil
}

// readStepLog counts, for each step, the lines of a step log naming it.
func readStepLog(path string, n int) ([]int, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return make([]int, n), nil
	}
	if err != nil {
		return nil, err
	}
	ran := make([]int, n)
	for line := range strings.Lines(string(data)) {
		i, err := strconv.Atoi(strings.TrimSuffix(line, "\n"))
		if err != nil || i < 0 || i >= n {
			return nil, fmt.Errorf("%s: bad line %q", path, line)
		}
		ran[i]++
	}
	return ran, nil
}

// --- the driver ---

// measurement kinds
const (
	kindFresh = "fresh"
	kindRerun = "rerun"
	kindCrash = "crash"
)

// samples are one system's measurements at one n.
type samples struct {
	fresh, rerun []childRun
	crash        []crashOutcome
}

// TestPeers measures the systems named by -peers.systems at each step count
// of -peers.n, -peers.rounds times each, and prints the tables of
// docs/PERFORMANCE.md. Every run is a process of its own. In each round the
// two systems of a pair (durable and a peer on the same store) run one after
// the other, in an order that alternates from round to round: a fresh run
// and a rerun of it, then a crash-resume.
func TestPeers(t *testing.T) {
	if *flagN == "" {
		t.Skip("measures durable against DBOS and go-workflows; give -peers.n (e.g. -peers.n=1000,10000) to run it")
	}
	var ns []int
	for f := range strings.SplitSeq(*flagN, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			t.Fatalf("-peers.n: bad step count %q", f)
		}
		ns = append(ns, n)
	}
	measure := map[string]bool{}
	for m := range strings.SplitSeq(*flagMeasure, ",") {
		switch m {
		case kindFresh, kindRerun, kindCrash:
			measure[m] = true
		default:
			t.Fatalf("-peers.measure: unknown measurement %q", m)
		}
	}
	if measure[kindRerun] && !measure[kindFresh] {
		t.Fatal("-peers.measure: a rerun needs the fresh run before it")
	}
	want := map[string]bool{}
	for s := range strings.SplitSeq(*flagSystems, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if _, ok := systemNamed(s); !ok {
				t.Fatalf("-peers.systems: unknown system %q", s)
			}
			want[s] = true
		}
	}
	url := os.Getenv("TEST_DATABASE_URL")
	var pairs [][]system
	for _, peer := range systems {
		if peer.against == "" {
			continue
		}
		base, _ := systemNamed(peer.against)
		var pair []system
		for _, s := range []system{base, peer} {
			if len(want) == 0 || want[s.name] {
				pair = append(pair, s)
			}
		}
		if len(pair) == 0 {
			continue
		}
		if pair[0].store == "PostgreSQL" && url == "" {
			const how = `eval "$(PG_FSYNC=on scripts/pg.sh start /tmp/peers-pg)" starts a server and sets it`
			if os.Getenv("CI") == "true" {
				t.Fatal("TEST_DATABASE_URL is not set, and CI=true forbids skipping the PostgreSQL systems; " + how)
			}
			t.Logf("TEST_DATABASE_URL is not set: skipping the PostgreSQL systems; %s", how)
			continue
		}
		pairs = append(pairs, pair)
	}
	if len(pairs) == 0 {
		t.Skip("no system to measure")
	}
	if url != "" {
		t.Logf("PostgreSQL: %s", pgSettings(t, url))
	}

	ctx := context.Background()
	all := map[int]map[string]*samples{}
	for _, n := range ns {
		all[n] = map[string]*samples{}
		for _, pair := range pairs {
			for _, s := range pair {
				all[n][s.name] = &samples{}
			}
		}
		for round := range *flagRounds {
			for _, pair := range pairs {
				order := pair
				if round%2 == 1 && len(pair) == 2 {
					order = []system{pair[1], pair[0]}
				}
				for _, s := range order {
					if measure[kindFresh] {
						freshAndRerun(t, s, n, round, url, measure[kindRerun], all[n][s.name])
					}
				}
				for _, s := range order {
					if measure[kindCrash] {
						crashResume(ctx, t, s, n, round, url, all[n][s.name])
					}
				}
			}
		}
	}
	fmt.Print(report(ns, pairs, all))
}

func freshAndRerun(t *testing.T, s system, n, round int, url string, rerun bool, into *samples) {
	tr, cleanup := newTrial(t, s, n, *flagCap, url)
	defer cleanup()
	f, err := tr.runChildProfiled(modeFresh, "", 0, profilePath(s, modeFresh, n, round))
	if err != nil {
		t.Fatal(err)
	}
	into.fresh = append(into.fresh, f)
	t.Logf("n=%d round %d %-14s fresh  %s (setup %s, process %s, %d steps run)",
		n, round+1, s.name, fmtDuration(time.Duration(f.report.CallNS)), fmtDuration(time.Duration(f.report.SetupNS)), fmtDuration(f.wall), f.report.StepsRun)
	if !rerun {
		return
	}
	r, err := tr.runChildProfiled(modeRerun, "", 0, profilePath(s, modeRerun, n, round))
	if err != nil {
		t.Fatal(err)
	}
	if r.report.StepsRun != 0 {
		t.Errorf("%s: the rerun of a completed execution ran %d steps", s.name, r.report.StepsRun)
	}
	into.rerun = append(into.rerun, r)
	t.Logf("n=%d round %d %-14s rerun  %s (setup %s, process %s)",
		n, round+1, s.name, fmtDuration(time.Duration(r.report.CallNS)), fmtDuration(time.Duration(r.report.SetupNS)), fmtDuration(r.wall))
}

// profilePath names the CPU profile of a durable child's call, or returns ""
// unless -peers.cpuprofile asks for one.
func profilePath(s system, mode string, n, round int) string {
	if *flagCPU == "" || s.against != "" {
		return ""
	}
	return filepath.Join(*flagCPU, fmt.Sprintf("%s-%s-n%d-r%d.cpu", s.name, mode, n, round+1))
}

func crashResume(ctx context.Context, t *testing.T, s system, n, round int, url string, into *samples) {
	tr, cleanup := newTrial(t, s, n, *flagCap, url)
	defer cleanup()
	c, err := tr.crash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	into.crash = append(into.crash, c)
	if c.twiceStored != 0 {
		t.Errorf("%s: %d steps ran again although their result was stored", s.name, c.twiceStored)
	}
	t.Logf("n=%d round %d %-14s crash  resumed in %s (call %s); %d lines before the kill, %d stored, %d ran twice, %d ran twice although stored",
		n, round+1, s.name, fmtDuration(time.Duration(c.resume.report.TotalNS)), fmtDuration(time.Duration(c.resume.report.CallNS)),
		c.ranBeforeKill, c.stored, c.twice, c.twiceStored)
}

// pgSettings describes the server's durability settings.
func pgSettings(t *testing.T, url string) string {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var version, fsync, fpw, sc string
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('fsync'),
		current_setting('full_page_writes'), current_setting('synchronous_commit')`).Scan(&version, &fsync, &fpw, &sc); err != nil {
		t.Fatal(err)
	}
	if fsync != "on" {
		t.Logf("WARNING: fsync is %s: the PostgreSQL numbers are not durable ones (PG_FSYNC=on scripts/pg.sh start DIR)", fsync)
	}
	return fmt.Sprintf("server %s, fsync=%s, full_page_writes=%s, synchronous_commit=%s", version, fsync, fpw, sc)
}

func pgExec(t testing.TB, url, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

// --- the report ---

// report prints, for each n, the table of fresh runs and reruns, the table
// of crash-resumes and the setup times, in Markdown.
func report(ns []int, pairs [][]system, all map[int]map[string]*samples) string {
	var b strings.Builder
	call := func(rs []childRun) spread {
		ds := make([]time.Duration, len(rs))
		for i, r := range rs {
			ds[i] = time.Duration(r.report.CallNS)
		}
		return spreadOf(ds)
	}
	field := func(rs []childRun, f func(childRun) time.Duration) spread {
		ds := make([]time.Duration, len(rs))
		for i, r := range rs {
			ds[i] = f(r)
		}
		return spreadOf(ds)
	}
	for _, n := range ns {
		fmt.Fprintf(&b, "\n### %d steps, at most %d at once, %d rounds\n\n", n, *flagCap, *flagRounds)
		b.WriteString("| measurement | system | store | min | median | max | peer / durable (medians) |\n|---|---|---|---:|---:|---:|---:|\n")
		for _, kind := range []string{kindFresh, kindRerun} {
			label := map[string]string{kindFresh: "fresh run", kindRerun: "rerun in a new process"}[kind]
			for _, pair := range pairs {
				var base spread
				for k, s := range pair {
					rs := all[n][s.name].fresh
					if kind == kindRerun {
						rs = all[n][s.name].rerun
					}
					sp := call(rs)
					if sp.n == 0 {
						continue
					}
					r := ""
					if k == 0 && s.against == "" {
						base = sp
					} else {
						r = "**" + fmtRatio(ratio(sp, base)) + "**"
					}
					fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", label, s.titleWithVersion(), s.store,
						fmtDuration(sp.min), fmtDuration(sp.median), fmtDuration(sp.max), r)
				}
			}
		}
		b.WriteString("\n| crash-resume: system | store | steps started before the kill | results stored | time to finish, min / median / max | peer / durable (medians) | steps run twice, per round | … of them stored before the kill |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
		for _, pair := range pairs {
			var base spread
			for k, s := range pair {
				cs := all[n][s.name].crash
				if len(cs) == 0 {
					continue
				}
				var before, stored, twice, twiceStored []int
				ds := make([]time.Duration, len(cs))
				for i, c := range cs {
					before = append(before, c.ranBeforeKill)
					stored = append(stored, c.stored)
					twice = append(twice, c.twice)
					twiceStored = append(twiceStored, c.twiceStored)
					ds[i] = time.Duration(c.resume.report.TotalNS)
				}
				sp := spreadOf(ds)
				r := ""
				if k == 0 && s.against == "" {
					base = sp
				} else {
					r = "**" + fmtRatio(ratio(sp, base)) + "**"
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s / %s / %s | %s | %s | %s |\n", s.titleWithVersion(), s.store,
					fmtInts(before), fmtInts(stored), fmtDuration(sp.min), fmtDuration(sp.median), fmtDuration(sp.max), r,
					fmtInts(twice), fmtInts(twiceStored))
			}
		}
		b.WriteString("\n| system | store | setup before the fresh run (median) | fresh run's process, exec to exit (median) | setup before the rerun (median) | rerun's process (median) |\n|---|---|---:|---:|---:|---:|\n")
		for _, pair := range pairs {
			for _, s := range pair {
				sm := all[n][s.name]
				if len(sm.fresh) == 0 {
					continue
				}
				setup := func(r childRun) time.Duration { return time.Duration(r.report.SetupNS) }
				wall := func(r childRun) time.Duration { return r.wall }
				cells := []string{fmtDuration(field(sm.fresh, setup).median), fmtDuration(field(sm.fresh, wall).median), "", ""}
				if len(sm.rerun) > 0 {
					cells[2], cells[3] = fmtDuration(field(sm.rerun, setup).median), fmtDuration(field(sm.rerun, wall).median)
				}
				fmt.Fprintf(&b, "| %s | %s | %s |\n", s.titleWithVersion(), s.store, strings.Join(cells, " | "))
			}
		}
		for _, pair := range pairs {
			for _, s := range pair {
				if s.name != "go-workflows" || len(all[n][s.name].fresh) == 0 {
					continue
				}
				cl := field(all[n][s.name].fresh, func(r childRun) time.Duration { return time.Duration(r.report.ClientNS) })
				fmt.Fprintf(&b, "\ngo-workflows' fresh runs are timed to the commit of their completion; client.GetWorkflowResult returned them after %s / %s / %s.\n",
					fmtDuration(cl.min), fmtDuration(cl.median), fmtDuration(cl.max))
			}
		}
	}
	return b.String()
}
