package main_test

import (
	"bytes"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	_ "modernc.org/sqlite" // the "sqlite" driver, to age and damage files

	"github.com/durable-go/durable/journal/pgjournal"
	"github.com/durable-go/durable/journal/sqlitejournal"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// Made once by TestMain: the durable binary, and a journal the demo of
// examples/resume filled (a run that dies part-way and one that resumes).
var (
	durableBin string
	demoDB     string
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "durable-cmd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := setup(dir); err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}

// setup builds the command and the demo, and runs the demo.
func setup(dir string) error {
	durableBin = filepath.Join(dir, "durable")
	demoBin := filepath.Join(dir, "resume")
	demoDB = filepath.Join(dir, "demo.db")
	build := func(pkgDir, out string) error {
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Dir = pkgDir
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build in %s: %v\n%s", pkgDir, err, b)
		}
		return nil
	}
	if err := build(".", durableBin); err != nil {
		return err
	}
	if err := build("../../examples/resume", demoBin); err != nil {
		return err
	}
	if b, err := exec.Command(demoBin, "-reset", "-db", demoDB).CombinedOutput(); err != nil {
		return fmt.Errorf("the demo: %v\n%s", err, b)
	}
	return nil
}

// result is what a run of the binary did.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the binary as a user would, in UTC, with standard input from
// stdin (none: /dev/null) and its output piped. env adds to the test's
// environment, from which DURABLE_JOURNAL and NO_COLOR are removed.
func run(t *testing.T, env []string, stdin io.Reader, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, durableBin, args...)
	cmd.Env = append(environ(), env...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{stdout.String(), stderr.String(), code}
}

func environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DURABLE_JOURNAL=") && !strings.HasPrefix(kv, "NO_COLOR=") && !strings.HasPrefix(kv, "TZ=") {
			env = append(env, kv)
		}
	}
	return append(env, "TZ=UTC")
}

// ok runs the binary and requires it to succeed, silently on stderr.
func (f *fixture) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := run(t, nil, nil, append(args, f.flags...)...)
	require.Equal(t, 0, r.code, "durable %s: %s", strings.Join(args, " "), r.stderr)
	require.Empty(t, r.stderr)
	require.NotContains(t, r.stdout, "\x1b[", "colours in piped output")
	return r.stdout
}

// fail runs the binary and requires it to exit with code and one line on
// stderr, which it returns.
func (f *fixture) fail(t *testing.T, code int, stdin io.Reader, args ...string) string {
	t.Helper()
	r := run(t, nil, stdin, append(args, f.flags...)...)
	require.Equal(t, code, r.code, "durable %s: stdout %q, stderr %q", strings.Join(args, " "), r.stdout, r.stderr)
	requireOneLine(t, r.stderr)
	return r.stderr
}

func requireOneLine(t *testing.T, s string) {
	t.Helper()
	require.True(t, strings.HasSuffix(s, "\n") && strings.Count(s, "\n") == 1, "want one line, got %q", s)
	require.True(t, strings.HasPrefix(s, "durable"), "want the command named first, got %q", s)
}

// A fixture is a journal, on one backend, holding the demo's execution, the
// nested one and the damaged one, and the flags that name it.
type fixture struct {
	name  string // the backend's
	flags []string
	// age makes an execution's entries look d older, as the journal's
	// listing sees them.
	age func(t *testing.T, storedID string, d time.Duration)
}

// backends are the journals every test runs against.
var backends = []struct {
	name string
	new  func(t *testing.T) *fixture
}{
	{"sqlite", newSQLite},
	{"postgres", newPostgres},
}

func forEachBackend(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := b.new(t)
			f.name = b.name
			fn(t, f)
		})
	}
}

// newSQLite copies the demo's journal and adds the other executions to it.
func newSQLite(t *testing.T) *fixture {
	path := filepath.Join(t.TempDir(), "journal.db")
	b, err := os.ReadFile(demoDB)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
	for _, suffix := range []string{"-wal", "-shm"} { // none once the demo has closed it, normally
		if b, err := os.ReadFile(demoDB + suffix); err == nil {
			require.NoError(t, os.WriteFile(path+suffix, b, 0o600))
		}
	}
	j, err := sqlitejournal.Open(path)
	require.NoError(t, err)
	runNested(t, j)
	runDamaged(t, j)
	require.NoError(t, j.Close())
	return &fixture{
		flags: []string{"--journal", "sqlite:" + path},
		age: func(t *testing.T, id string, d time.Duration) {
			db := openSQLite(t, path)
			_, err := db.Exec(`UPDATE durable_executions SET first_at = first_at - ?1, last_at = last_at - ?1 WHERE id = ?2`,
				d.Milliseconds(), []byte(id))
			require.NoError(t, err)
		},
	}
}

func openSQLite(t *testing.T, path string) *sql.DB {
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

// databaseURL returns TEST_DATABASE_URL, skipping the test when it is unset,
// except in CI (CI=true), where that fails: CI must not pass by skipping.
func databaseURL(t *testing.T) string {
	if url := os.Getenv("TEST_DATABASE_URL"); url != "" {
		return url
	}
	const how = `eval "$(bash scripts/pg.sh start /tmp/durable-pg)" starts a server and sets it`
	if os.Getenv("CI") == "true" {
		t.Fatal("TEST_DATABASE_URL is not set, and CI=true forbids skipping the PostgreSQL tests; " + how)
	}
	t.Skip("TEST_DATABASE_URL is not set; " + how)
	return ""
}

// newPostgres makes a journal in a schema of its own, dropped when the test
// ends: the demo's entries copied byte for byte, and the other executions
// run against it.
func newPostgres(t *testing.T) *fixture {
	url := databaseURL(t)
	schema := fmt.Sprintf("durable_cmd_test_%016x", rand.Uint64())
	pgExec(t, url, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { pgExec(t, url, "DROP SCHEMA "+schema+" CASCADE") })
	table := schema + ".durable_journal"

	ctx := context.Background()
	j, err := pgjournal.Open(ctx, url, pgjournal.WithTable(table))
	require.NoError(t, err)
	require.NoError(t, j.Migrate(ctx))
	demo, err := sqlitejournal.Open(demoDB)
	require.NoError(t, err)
	copyEntries(t, demo, j)
	require.NoError(t, demo.Close())
	runNested(t, j)
	runDamaged(t, j)
	require.NoError(t, j.Close())
	return &fixture{
		flags: []string{"--journal", url, "--table", table},
		age: func(t *testing.T, id string, d time.Duration) {
			pgExec(t, url, `UPDATE `+schema+`.durable_journal_executions SET first_at = first_at - $1::interval, last_at = last_at - $1::interval WHERE id = $2`,
				fmt.Sprintf("%d milliseconds", d.Milliseconds()), []byte(id))
		},
	}
}

func pgExec(t *testing.T, url, sql string, args ...any) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	require.NoError(t, err)
}

// Golden files hold output with what changes from run to run replaced:
// times, durations, and the demo's deciding branch (whichever order finished
// last).
var (
	timeRE     = regexp.MustCompile(`\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?Z?`)
	durationRE = regexp.MustCompile(`(ran |\+|written )-?(\d+(\.\d+)?(ns|µs|ms|s)|\d+m\d\ds|\d+h\d\dm|\d+d\d\dh)`)
	deciderRE  = regexp.MustCompile(`(decided ALL_COMPLETED at \+<d>) by order-\d\d`)
)

func normalize(s string) string {
	s = timeRE.ReplaceAllString(s, "<time>")
	s = durationRE.ReplaceAllString(s, "${1}<d>")
	return deciderRE.ReplaceAllString(s, "$1 by order-NN")
}

// golden compares got, normalized, with testdata/name, or rewrites it with
// -update. Every backend must print the same; SQLite's output is the one
// written.
func (f *fixture) golden(t *testing.T, name, got string) {
	t.Helper()
	got = normalize(got)
	path := filepath.Join("testdata", name)
	if *update && f.name == "sqlite" {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create it")
	require.Equal(t, string(want), got, "%s differs; go test -update rewrites it", path)
}
