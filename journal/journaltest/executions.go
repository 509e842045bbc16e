package journaltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durable-go/durable/journal"
)

// The subtests of journal.Lister and journal.Deleter. Their executions are
// named after the subtest's key prefix, so that they sort together and apart
// from any other subtest's.

// execPrefix turns a subtest's key prefix into the start of execution IDs of
// its own: the prefix's segments joined with '-' (an ID holds no '/').
func execPrefix(p string) string {
	return strings.ReplaceAll(strings.TrimSuffix(p, "/"), "/", "-") + "-"
}

// clockSlack is how far a journal's clock (a database server's) may be from
// the test's when Run checks the times it reports.
const clockSlack = time.Minute

// listAll lists, page by page, every execution whose ID starts with x.
func listAll(t *testing.T, l journal.Lister, x string, limit int) []journal.Execution {
	t.Helper()
	var all []journal.Execution
	after := x
	for {
		page, err := l.Executions(ctx(), after, limit)
		if err != nil {
			t.Fatalf("Executions(%q, %d): %v", after, limit, err)
		}
		if len(page) > limit {
			t.Fatalf("Executions(%q, %d) returned %d executions", after, limit, len(page))
		}
		for i, e := range page {
			if e.ID <= after {
				t.Fatalf("Executions(%q, %d) returned %q, not after %q", after, limit, e.ID, after)
			}
			if i > 0 && e.ID <= page[i-1].ID {
				t.Fatalf("Executions(%q, %d) returned %q after %q: want ascending IDs", after, limit, e.ID, page[i-1].ID)
			}
			if !strings.HasPrefix(e.ID, x) {
				return all
			}
			all = append(all, e)
		}
		if len(page) < limit {
			return all
		}
		after = page[len(page)-1].ID
	}
}

// executionsOf returns the executions listAll finds, by ID.
func executionsOf(t *testing.T, l journal.Lister, x string) map[string]journal.Execution {
	t.Helper()
	m := map[string]journal.Execution{}
	for _, e := range listAll(t, l, x, 1000) {
		m[e.ID] = e
	}
	return m
}

func sameExecution(a, b journal.Execution) bool {
	return a.ID == b.ID && a.Entries == b.Entries && a.First.Equal(b.First) && a.Last.Equal(b.Last)
}

// randomValue returns n random bytes.
func randomValue(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// snapshot returns every entry the journal holds when it is a Scanner, and
// the entries of keys otherwise.
func snapshot(t *testing.T, j journal.Journal, keys []string) map[string][]byte {
	t.Helper()
	all := map[string][]byte{}
	if s, ok := j.(journal.Scanner); ok {
		err := s.Scan(ctx(), "", func(k string, v []byte) error {
			all[k] = bytes.Clone(v)
			return nil
		})
		if err != nil {
			t.Fatalf("Scan of the whole journal: %v", err)
		}
		return all
	}
	for _, k := range keys {
		if v, ok := mustGet(t, j, k); ok {
			all[k] = v
		}
	}
	return all
}

func testLister(t *testing.T, j journal.Journal, p string) {
	l, ok := j.(journal.Lister)
	if !ok {
		t.Skip("the journal does not implement journal.Lister")
	}
	x := execPrefix(p)
	// IDs that sort in byte order, not as text would: NUL, a byte past ASCII,
	// an escaped slash, and a prefix of another ID.
	ids := []string{x + "a", x + "b", x + "b\x00", x + "b0", x + "c%2Fd", x + "é", x + "\xff"}
	r := rand.New(rand.NewPCG(3, 4))
	start := time.Now()
	for i, id := range ids {
		for k := range i + 1 {
			mustPut(t, j, fmt.Sprintf("%s/step-%d/inner", id, k), randomValue(r, k))
		}
		// Writing a key again stores nothing and counts nothing.
		mustPut(t, j, id+"/step-0/inner", []byte("again"))
	}
	mustPut(t, j, x+"solo", []byte("a key without '/' is an execution of its own"))
	end := time.Now()

	want := append(slices.Clone(ids), x+"solo")
	slices.Sort(want)
	all := listAll(t, l, x, 1000)
	var got []string
	for _, e := range all {
		got = append(got, e.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Executions listed %q, want %q", got, want)
	}
	for _, e := range all {
		wantEntries := int64(1)
		if i := slices.Index(ids, e.ID); i >= 0 {
			wantEntries = int64(i + 1)
		}
		if e.Entries != wantEntries {
			t.Errorf("execution %q: Entries = %d, want %d", e.ID, e.Entries, wantEntries)
		}
		if e.First.IsZero() || e.Last.Before(e.First) {
			t.Errorf("execution %q: First %v, Last %v: want First <= Last", e.ID, e.First, e.Last)
		}
		if e.First.Before(start.Add(-clockSlack)) || e.Last.After(end.Add(clockSlack)) {
			t.Errorf("execution %q: First %v, Last %v, written between %v and %v", e.ID, e.First, e.Last, start, end)
		}
	}

	// Every page size gives the same list.
	for _, limit := range []int{1, 2, 3, 7, 8} {
		paged := listAll(t, l, x, limit)
		if !slices.EqualFunc(paged, all, sameExecution) {
			t.Fatalf("Executions in pages of %d listed %v, want %v", limit, paged, all)
		}
	}
	// after is exclusive, and need not be an execution's ID.
	if page, err := l.Executions(ctx(), x+"b", 2); err != nil || len(page) != 2 || page[0].ID != x+"b\x00" || page[1].ID != x+"b0" {
		t.Fatalf("Executions(%q, 2) = %v, %v; want %q and %q", x+"b", page, err, x+"b\x00", x+"b0")
	}
	if page, err := l.Executions(ctx(), x+"bz", 1); err != nil || len(page) != 1 || page[0].ID != x+"c%2Fd" {
		t.Fatalf("Executions(%q, 1) = %v, %v; want %q", x+"bz", page, err, x+"c%2Fd")
	}
	// From the start: the first page is sorted and no longer than asked.
	first, err := l.Executions(ctx(), "", 5)
	if err != nil || len(first) == 0 || len(first) > 5 || !slices.IsSortedFunc(first, func(a, b journal.Execution) int { return strings.Compare(a.ID, b.ID) }) {
		t.Fatalf("Executions(\"\", 5) = %v, %v; want 1 to 5 executions in ascending order", first, err)
	}
	for _, limit := range []int{0, -1} {
		if _, err := l.Executions(ctx(), x, limit); err == nil {
			t.Fatalf("Executions with limit %d: no error", limit)
		}
	}

	// A later write moves Last and counts, and leaves First.
	before := all[slices.IndexFunc(all, func(e journal.Execution) bool { return e.ID == x+"a" })]
	time.Sleep(20 * time.Millisecond) // past a millisecond clock's tick
	mustPut(t, j, x+"a/later", []byte("later"))
	after := executionsOf(t, l, x)[x+"a"]
	if after.Entries != before.Entries+1 || !after.First.Equal(before.First) || !after.Last.After(before.Last) {
		t.Fatalf("after one more Put, execution %q went from %+v to %+v; want one more entry, the same First and a later Last", x+"a", before, after)
	}

	c, cancel := context.WithCancel(ctx())
	cancel()
	if _, err := l.Executions(c, x, 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("Executions with a cancelled context: err = %v, want context.Canceled", err)
	}
}

// testListerConcurrentPuts checks the count of an execution that many Puts,
// some of them of one key, write at once.
func testListerConcurrentPuts(t *testing.T, j journal.Journal, p string) {
	l, ok := j.(journal.Lister)
	if !ok {
		t.Skip("the journal does not implement journal.Lister")
	}
	x := execPrefix(p)
	const writers, keys = 200, 150
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			k := fmt.Sprintf("%sfan/%d", x, i%keys)
			if _, err := j.Put(ctx(), k, []byte(fmt.Sprint(i))); err != nil {
				t.Errorf("Put(%q): %v", k, err)
			}
		})
	}
	wg.Wait()
	got := executionsOf(t, l, x)
	if len(got) != 1 || got[x+"fan"].Entries != keys {
		t.Fatalf("after %d concurrent Puts of %d keys, Executions lists %v; want %q with %d entries", writers, keys, got, x+"fan", keys)
	}
}

func testDeleteExecution(t *testing.T, j journal.Journal, p string) {
	d, ok := j.(journal.Deleter)
	if !ok {
		t.Skip("the journal does not implement journal.Deleter")
	}
	x := execPrefix(p)
	victim := x + "v"
	r := rand.New(rand.NewPCG(5, 6))
	var victimKeys, otherKeys []string
	put := func(keys *[]string, k string, n int) {
		mustPut(t, j, k, randomValue(r, n))
		*keys = append(*keys, k)
	}
	for i := range 300 {
		put(&victimKeys, fmt.Sprintf("%s/%d", victim, i), i%40)
	}
	for _, k := range []string{victim, victim + "/", victim + "//", victim + "/deep/a/b", victim + "/\xff\xff", victim + "/\x00"} {
		put(&victimKeys, k, 10)
	}
	// Neighbours on both sides of the victim's keys, in byte order.
	for _, n := range []string{x + "u\xff", x + "v\x00", x + "v-", x + "v.", x + "v0", x + "va", x + "w", x + "v0/v/1"} {
		put(&otherKeys, n+"/1", 20)
		put(&otherKeys, n+"/2", 0)
		put(&otherKeys, n, 5)
	}
	put(&otherKeys, x+"v\xff/1", 20)
	put(&otherKeys, x+"v%2Fw/1", 20)

	before := snapshot(t, j, append(slices.Clone(victimKeys), otherKeys...))
	var listed map[string]journal.Execution
	l, lists := j.(journal.Lister)
	if lists {
		listed = executionsOf(t, l, x)
		if e := listed[victim]; e.Entries != int64(len(victimKeys)) {
			t.Fatalf("before the deletion, %q has %d entries, want %d", victim, e.Entries, len(victimKeys))
		}
	}

	n, err := d.DeleteExecution(ctx(), victim)
	if err != nil {
		t.Fatalf("DeleteExecution(%q): %v", victim, err)
	}
	if n != int64(len(victimKeys)) {
		t.Fatalf("DeleteExecution(%q) = %d, want %d", victim, n, len(victimKeys))
	}
	for _, k := range victimKeys {
		if v, ok := mustGet(t, j, k); ok {
			t.Fatalf("Get(%q) = %q after its execution was deleted", k, v)
		}
	}
	// Everything else is intact, byte for byte.
	want := maps.Clone(before)
	for _, k := range victimKeys {
		delete(want, k)
	}
	after := snapshot(t, j, otherKeys)
	if len(after) != len(want) {
		t.Fatalf("the journal holds %d entries after the deletion, want %d", len(after), len(want))
	}
	for k, v := range want {
		if got, ok := after[k]; !ok || !bytes.Equal(got, v) {
			t.Fatalf("entry %q changed in the deletion of another execution: %q, %v; was %q", k, got, ok, v)
		}
	}
	if lists {
		now := executionsOf(t, l, x)
		if _, ok := now[victim]; ok {
			t.Fatalf("Executions lists %q after its deletion", victim)
		}
		delete(listed, victim)
		if !maps.EqualFunc(now, listed, sameExecution) {
			t.Fatalf("Executions after the deletion lists %v, want the others unchanged: %v", now, listed)
		}
	}

	for _, id := range []string{victim, x + "unknown"} {
		if n, err := d.DeleteExecution(ctx(), id); n != 0 || err != nil {
			t.Fatalf("DeleteExecution(%q) of no execution = %d, %v; want 0, nil", id, n, err)
		}
	}
	if n, err := d.DeleteExecution(ctx(), x+"v0/v"); err == nil || n != 0 {
		t.Fatalf("DeleteExecution of an ID holding '/' = %d, %v; want an error", n, err)
	}
	if _, ok := mustGet(t, j, x+"v0/v/1"); !ok {
		t.Fatal("DeleteExecution of an ID holding '/' deleted an entry")
	}

	// A Put after the deletion makes the execution again.
	mustPut(t, j, victim+"/0", []byte("again"))
	if got, _ := mustGet(t, j, victim+"/0"); string(got) != "again" {
		t.Fatalf("Get after a Put to a deleted execution = %q", got)
	}
	if lists {
		if e := executionsOf(t, l, x)[victim]; e.Entries != 1 {
			t.Fatalf("after one Put to a deleted execution it has %d entries, want 1", e.Entries)
		}
	}

	c, cancel := context.WithCancel(ctx())
	cancel()
	if _, err := d.DeleteExecution(c, victim); !errors.Is(err, context.Canceled) {
		t.Fatalf("DeleteExecution with a cancelled context: err = %v, want context.Canceled", err)
	}
}

func testDeleteOlder(t *testing.T, j journal.Journal, p string) {
	d, ok := j.(journal.Deleter)
	if !ok {
		t.Skip("the journal does not implement journal.Deleter")
	}
	x := execPrefix(p)
	r := rand.New(rand.NewPCG(7, 8))
	entries := map[string][]byte{}
	put := func(k string) {
		v := randomValue(r, 1+len(entries)%30)
		mustPut(t, j, k, v)
		entries[k] = v
	}
	old := []string{x + "old1", x + "old2", x + "old3"}
	for _, id := range old {
		for i := range 5 {
			put(fmt.Sprintf("%s/%d", id, i))
		}
	}
	put(x + "mixed/before")
	time.Sleep(20 * time.Millisecond) // past a millisecond clock's tick
	cutLocal := time.Now()
	time.Sleep(20 * time.Millisecond)
	kept := []string{x + "new1", x + "new2", x + "mixed"}
	for _, id := range kept {
		for i := range 3 {
			put(fmt.Sprintf("%s/%d", id, i))
		}
	}

	// The cut: between the old executions' latest writes and the others', by
	// the journal's clock when it tells it.
	cut := cutLocal
	l, lists := j.(journal.Lister)
	if lists {
		listed := executionsOf(t, l, x)
		var oldLast, keptLast time.Time
		for _, id := range old {
			if e := listed[id]; e.Last.After(oldLast) {
				oldLast = e.Last
			}
		}
		for i, id := range kept {
			if e := listed[id]; i == 0 || e.Last.Before(keptLast) {
				keptLast = e.Last
			}
		}
		if !oldLast.Before(keptLast) {
			t.Fatalf("the old executions were last written at %v, the new ones at %v, 40ms later by the test's clock", oldLast, keptLast)
		}
		cut = oldLast.Add(keptLast.Sub(oldLast) / 2)
	}

	if n, err := d.DeleteOlder(ctx(), time.Unix(0, 0)); n != 0 || err != nil {
		t.Fatalf("DeleteOlder(1970) = %d, %v; want 0, nil", n, err)
	}
	n, err := d.DeleteOlder(ctx(), cut)
	if err != nil {
		t.Fatalf("DeleteOlder: %v", err)
	}
	// Earlier subtests' executions, when they share the journal, go too.
	if n < len(old) {
		t.Fatalf("DeleteOlder = %d, want at least the %d old executions", n, len(old))
	}
	for k, v := range entries {
		got, ok := mustGet(t, j, k)
		if slices.Contains(old, k[:strings.IndexByte(k, '/')]) {
			if ok {
				t.Fatalf("Get(%q) = %q after DeleteOlder deleted its execution", k, got)
			}
			continue
		}
		if !ok || !bytes.Equal(got, v) {
			t.Fatalf("Get(%q) = %q, %v after DeleteOlder; want %q, kept", k, got, ok, v)
		}
	}
	if lists {
		listed := executionsOf(t, l, x)
		ids := slices.Sorted(maps.Keys(listed))
		if want := []string{x + "mixed", x + "new1", x + "new2"}; !slices.Equal(ids, want) {
			t.Fatalf("after DeleteOlder, Executions lists %q, want %q", ids, want)
		}
		if e := listed[x+"mixed"]; e.Entries != 4 || !e.First.Before(cut) {
			t.Fatalf("execution %q, first written before the cut and last after it: %+v", x+"mixed", e)
		}
		if all, err := l.Executions(ctx(), "", 1000); err != nil || len(all) != 3 {
			t.Fatalf("after DeleteOlder the journal lists %v, %v; want the 3 executions written after the cut", all, err)
		}
	}
	if n, err := d.DeleteOlder(ctx(), cut); n != 0 || err != nil {
		t.Fatalf("DeleteOlder again = %d, %v; want 0, nil", n, err)
	}

	c, cancel := context.WithCancel(ctx())
	cancel()
	if _, err := d.DeleteOlder(c, cut); !errors.Is(err, context.Canceled) {
		t.Fatalf("DeleteOlder with a cancelled context: err = %v, want context.Canceled", err)
	}
}
