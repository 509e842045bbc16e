// Package journaltest checks a [journal.Journal] implementation against the
// contract durable relies on, the way testing/fstest checks a file system.
//
// A backend's tests call [Run] with a constructor:
//
//	func TestConformance(t *testing.T) {
//		journaltest.Run(t, func() journal.Journal { return openTestJournal(t) })
//	}
package journaltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/durable-go/durable/journal"
)

// Run checks the journals made by newJournal against the contract of
// [journal.Journal], and of each optional interface they implement:
// [journal.Scanner], [journal.Lister], [journal.Deleter]. Each subtest calls
// newJournal once and expects an empty journal, or at least one whose keys do
// not overlap another call's: Run prefixes every key it writes with a value
// unique to the subtest. The subtests of listing and deleting write to
// executions of their own, whose IDs start with that value too.
//
// The subtest of [journal.Deleter.DeleteOlder], which runs last, deletes every
// execution last written before it began: journals that newJournal returns may
// share their storage with earlier subtests, not with data that must survive.
func Run(t *testing.T, newJournal func() journal.Journal) {
	t.Helper()
	var seq int
	prefix := func() string {
		seq++
		return fmt.Sprintf("journaltest/%d/%x/", seq, rand.Uint64())
	}
	sub := func(name string, f func(t *testing.T, j journal.Journal, p string)) {
		t.Run(name, func(t *testing.T) {
			f(t, newJournal(), prefix())
		})
	}
	sub("MissingKey", testMissingKey)
	sub("WriteOnce", testWriteOnce)
	sub("ConcurrentPutOneKey", testConcurrentPutOneKey)
	sub("ManyKeys", testManyKeys)
	sub("EmptyValue", testEmptyValue)
	sub("LargeValue", testLargeValue)
	sub("ArbitraryKeyBytes", testArbitraryKeys)
	sub("ValuesAreCopied", testValuesAreCopied)
	sub("CancelledContext", testCancelledContext)
	sub("Scanner", testScanner)
	sub("Lister", testLister)
	sub("ListerConcurrentPuts", testListerConcurrentPuts)
	sub("DeleteExecution", testDeleteExecution)
	sub("DeleteOlder", testDeleteOlder)
}

func ctx() context.Context { return context.Background() }

func mustPut(t *testing.T, j journal.Journal, key string, v []byte) []byte {
	t.Helper()
	got, err := j.Put(ctx(), key, v)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return got
}

func mustGet(t *testing.T, j journal.Journal, key string) ([]byte, bool) {
	t.Helper()
	v, ok, err := j.Get(ctx(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v, ok
}

func testMissingKey(t *testing.T, j journal.Journal, p string) {
	v, ok := mustGet(t, j, p+"missing")
	if ok || len(v) != 0 {
		t.Fatalf("Get of a missing key = %q, %v; want nothing, false", v, ok)
	}
	mustPut(t, j, p+"a", []byte("1"))
	if _, ok := mustGet(t, j, p+"ab"); ok {
		t.Fatalf("Get(%q) found a value; only %q was written", p+"ab", p+"a")
	}
	if _, ok := mustGet(t, j, p); ok {
		t.Fatalf("Get of a prefix of a written key found a value")
	}
}

func testWriteOnce(t *testing.T, j journal.Journal, p string) {
	k := p + "k"
	if got := mustPut(t, j, k, []byte("first")); string(got) != "first" {
		t.Fatalf("first Put returned %q, want %q", got, "first")
	}
	if got := mustPut(t, j, k, []byte("second")); string(got) != "first" {
		t.Fatalf("second Put returned %q, want the earlier value %q", got, "first")
	}
	if got, ok := mustGet(t, j, k); !ok || string(got) != "first" {
		t.Fatalf("Get after two Puts = %q, %v; want %q, true", got, ok, "first")
	}
}

func testConcurrentPutOneKey(t *testing.T, j journal.Journal, p string) {
	const n = 32
	k := p + "contended"
	results := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = j.Put(ctx(), k, []byte(fmt.Sprintf("writer-%d", i)))
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Put from writer %d: %v", i, err)
		}
	}
	winner := results[0]
	if !bytes.HasPrefix(winner, []byte("writer-")) {
		t.Fatalf("Put returned %q, which no writer wrote", winner)
	}
	for i, r := range results {
		if !bytes.Equal(r, winner) {
			t.Fatalf("writer %d saw %q, writer 0 saw %q: exactly one Put must win and all must see it", i, r, winner)
		}
	}
	if got, _ := mustGet(t, j, k); !bytes.Equal(got, winner) {
		t.Fatalf("Get = %q after the race, want the winner %q", got, winner)
	}
}

func testManyKeys(t *testing.T, j journal.Journal, p string) {
	const n = 500
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := fmt.Sprintf("%skey-%d", p, i)
			v := fmt.Sprintf("value-%d", i)
			got, err := j.Put(ctx(), k, []byte(v))
			if err != nil {
				errs <- fmt.Errorf("Put(%q): %w", k, err)
				return
			}
			if string(got) != v {
				errs <- fmt.Errorf("Put(%q) returned %q, want %q", k, got, v)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range n {
		k := fmt.Sprintf("%skey-%d", p, i)
		if got, ok := mustGet(t, j, k); !ok || string(got) != fmt.Sprintf("value-%d", i) {
			t.Fatalf("Get(%q) = %q, %v", k, got, ok)
		}
	}
}

func testEmptyValue(t *testing.T, j journal.Journal, p string) {
	k := p + "empty"
	if got := mustPut(t, j, k, []byte{}); len(got) != 0 {
		t.Fatalf("Put of an empty value returned %q", got)
	}
	got, ok := mustGet(t, j, k)
	if !ok {
		t.Fatal("an empty value must be stored: Get found nothing")
	}
	if len(got) != 0 {
		t.Fatalf("Get = %q, want an empty value", got)
	}
	if got := mustPut(t, j, k, []byte("later")); len(got) != 0 {
		t.Fatalf("a key holding an empty value was overwritten with %q", got)
	}
}

func testLargeValue(t *testing.T, j journal.Journal, p string) {
	big := make([]byte, 6<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.UintN(256))
	}
	k := p + "large"
	if got := mustPut(t, j, k, big); !bytes.Equal(got, big) {
		t.Fatalf("Put of a %d-byte value returned %d bytes that differ", len(big), len(got))
	}
	if got, ok := mustGet(t, j, k); !ok || !bytes.Equal(got, big) {
		t.Fatalf("Get of a %d-byte value returned %d bytes (ok=%v) that differ", len(big), len(got), ok)
	}
}

func testArbitraryKeys(t *testing.T, j journal.Journal, p string) {
	keys := []string{
		"a/b", "a", "a/", "a//b", "a\x00b", "a\x00", "\x00", "ünïcødé/日本語",
		"%2F", "a%2Fb", "trailing ", " leading", "tab\tnew\nline", "#!$'\"\\",
		strings.Repeat("long-", 200), "\xff\xfe invalid utf-8",
	}
	for i, k := range keys {
		mustPut(t, j, p+k, []byte(fmt.Sprint(i)))
	}
	for i, k := range keys {
		got, ok := mustGet(t, j, p+k)
		if !ok || string(got) != fmt.Sprint(i) {
			t.Fatalf("Get(%q) = %q, %v; want %q: keys that differ in any byte must not collide", p+k, got, ok, fmt.Sprint(i))
		}
	}
}

func testValuesAreCopied(t *testing.T, j journal.Journal, p string) {
	k := p + "copied"
	in := []byte("original")
	out := mustPut(t, j, k, in)
	copy(in, "XXXXXXXX")
	if len(out) > 0 {
		out[0] = 'Y'
	}
	if got, _ := mustGet(t, j, k); string(got) != "original" {
		t.Fatalf("Get = %q after the caller changed its slices; a journal must not alias them", got)
	}
}

func testCancelledContext(t *testing.T, j journal.Journal, p string) {
	c, cancel := context.WithCancel(ctx())
	cancel()
	if _, _, err := j.Get(c, p+"k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context: err = %v, want one matching context.Canceled", err)
	}
	if _, err := j.Put(c, p+"k", []byte("v")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a cancelled context: err = %v, want one matching context.Canceled", err)
	}
	// A cancelled Put may or may not have stored its value, but never half of it.
	if got, ok := mustGet(t, j, p+"k"); ok && string(got) != "v" {
		t.Fatalf("after a cancelled Put the key holds %q", got)
	}
	// The journal still works with a live context.
	if got := mustPut(t, j, p+"k2", []byte("v2")); string(got) != "v2" {
		t.Fatalf("Put after a cancelled call returned %q", got)
	}
}

func testScanner(t *testing.T, j journal.Journal, p string) {
	s, ok := j.(journal.Scanner)
	if !ok {
		t.Skip("the journal does not implement journal.Scanner")
	}
	want := map[string]string{}
	for i := range 300 {
		k := fmt.Sprintf("%sscan/%03d", p, i)
		want[k] = fmt.Sprint(i)
		mustPut(t, j, k, []byte(want[k]))
	}
	// Keys just outside the prefix, on both sides in byte order.
	mustPut(t, j, p+"scan", []byte("no"))
	mustPut(t, j, p+"scan0", []byte("no"))
	mustPut(t, j, p+"scam/1", []byte("no"))
	mustPut(t, j, p+"scan/\xff\xff", []byte("edge"))
	want[p+"scan/\xff\xff"] = "edge"

	got := map[string]string{}
	err := s.Scan(ctx(), p+"scan/", func(k string, v []byte) error {
		if _, dup := got[k]; dup {
			return fmt.Errorf("key %q visited twice", k)
		}
		got[k] = string(v)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("Scan visited %d keys, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("Scan gave %q for %q, want %q", got[k], k, v)
		}
	}

	stop := errors.New("stop")
	calls := 0
	err = s.Scan(ctx(), p+"scan/", func(string, []byte) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Scan after fn failed: err = %v after %d calls; want fn's error after 1 call", err, calls)
	}

	none := 0
	if err := s.Scan(ctx(), p+"nothing-here/", func(string, []byte) error { none++; return nil }); err != nil || none != 0 {
		t.Fatalf("Scan of an empty prefix: %d calls, err %v", none, err)
	}

	c, cancel := context.WithCancel(ctx())
	cancel()
	if err := s.Scan(c, p+"scan/", func(string, []byte) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Scan with a cancelled context: err = %v, want context.Canceled", err)
	}
}
