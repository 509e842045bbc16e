package sqlitejournal_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal/sqlitejournal"
)

// checksumRun runs a small journaled program on the journal file at path and
// returns its result, or the error that ended it; ran counts the steps run.
func checksumRun(path string, ran *int) (string, error) {
	j, err := sqlitejournal.Open(path)
	if err != nil {
		return "", err
	}
	defer j.Close()
	ctx := durable.WithJournal(context.Background(), j, "exec")
	vs, err := durable.FanOut(ctx, "f", []string{"alpha", "beta"}, func(_ context.Context, s string) (string, error) {
		*ran++
		return "value-of-" + s, nil
	}, durable.WithMaxConcurrency(1))
	if err != nil {
		return "", err
	}
	res, err := durable.Settle(ctx, "s", []durable.Step[int]{
		durable.NewStep("x", func(context.Context) (int, error) { *ran++; return 42, nil }),
		durable.NewStep("y", func(context.Context) (int, error) { *ran++; return 0, durable.Permanent(errors.New("no")) }),
	}, durable.WithMaxConcurrency(1))
	if err != nil {
		return "", err
	}
	return fmt.Sprint(vs, res.Reason, res.SuccessCount()), nil
}

// Single-bit flips of stored values and keys in the SQLite file: every one is
// an error matching durable.ErrCorrupt that names the key, never a wrong value
// or a re-run of committed work.
func TestBitFlipsInTheFileAreDetected(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	ran := 0
	want, err := checksumRun(src, &ran)
	require.NoError(t, err)
	db, err := sql.Open("sqlite", src)
	require.NoError(t, err)
	type entry struct{ key, value []byte }
	var entries []entry
	rows, err := db.Query(`SELECT key, value FROM durable_journal ORDER BY key`)
	require.NoError(t, err)
	for rows.Next() {
		var e entry
		require.NoError(t, rows.Scan(&e.key, &e.value))
		entries = append(entries, e)
	}
	require.NoError(t, rows.Err())
	require.NoError(t, db.Close())
	require.NotEmpty(t, entries)

	r := rand.New(rand.NewPCG(1, 2))
	flips := 0
	for _, e := range entries {
		for range 6 {
			key, value := e.key, bytes.Clone(e.value)
			what := "value"
			if r.IntN(3) == 0 && bytes.Count(e.key, []byte("/")) >= 2 {
				// A bit of the key below its batch ("exec/f/"): the batch's
				// restore checks every entry under its prefix.
				k := bytes.Clone(e.key)
				first := bytes.LastIndexByte(k, '/') + 1
				bit := 8*first + r.IntN(8*(len(k)-first))
				k[bit/8] ^= 1 << (bit % 8)
				key, what = k, "key"
			} else {
				bit := r.IntN(8 * len(value))
				value[bit/8] ^= 1 << (bit % 8)
			}
			path := filepath.Join(dir, "flip-"+strconv.Itoa(flips)+".db")
			copyFile(t, src, path)
			db, err := sql.Open("sqlite", path)
			require.NoError(t, err)
			_, err = db.Exec(`UPDATE durable_journal SET key = ?, value = ? WHERE key = ?`, key, value, e.key)
			require.NoError(t, err)
			require.NoError(t, db.Close())
			ran := 0
			got, err := checksumRun(path, &ran)
			require.Error(t, err, "%s of %q flipped: not detected (result %s, %d steps ran; the first run's: %s)", what, e.key, got, ran, want)
			require.ErrorIs(t, err, durable.ErrCorrupt, "%s of %q flipped", what, e.key)
			require.ErrorContains(t, err, strconv.Quote(string(key)))
			require.Zero(t, ran, "%s of %q flipped: committed work ran again", what, e.key)
			flips++
		}
	}
	t.Logf("%d flips of %d entries, every one detected", flips, len(entries))
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, 0o644))
	for _, suffix := range []string{"-wal", "-shm"} {
		if b, err := os.ReadFile(from + suffix); err == nil {
			require.NoError(t, os.WriteFile(to+suffix, b, 0o644))
		}
	}
}

// A bit flipped in the bytes of the file itself, inside a stored value: the
// next run fails with ErrCorrupt naming the key, and runs nothing again.
func TestBitFlipInTheRawFileIsDetected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	ran := 0
	_, err := checksumRun(path, &ran)
	require.NoError(t, err)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	at := bytes.Index(data, []byte("value-of-beta"))
	require.Positive(t, at, "the value is in the file (the log was checkpointed at close)")
	for bit := range 8 {
		flipped := bytes.Clone(data)
		flipped[at+9] ^= 1 << bit // inside "beta"
		p := filepath.Join(t.TempDir(), "flipped.db")
		require.NoError(t, os.WriteFile(p, flipped, 0o644))
		ran := 0
		_, err := checksumRun(p, &ran)
		require.ErrorIs(t, err, durable.ErrCorrupt, "bit %d", bit)
		require.ErrorContains(t, err, `"exec/f/1"`)
		require.Zero(t, ran)
	}
}
