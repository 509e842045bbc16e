package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// randomRecords returns records of every kind with random contents.
func randomRecords(r *rand.Rand, n int) []*Record {
	str := func() string {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return string(b)
	}
	errRec := func() Error {
		e := Error{TypeName: str(), Message: str()}
		for range r.IntN(3) {
			e.Sentinels = append(e.Sentinels, str())
		}
		return e
	}
	var out []*Record
	for len(out) < n {
		rec := &Record{Version: Version, Winner: -1}
		switch r.IntN(5) {
		case 0:
			names := []string{str(), str(), str()}
			rec = NewHead(r.Int64(), str(), str(), len(names), func(i int) string { return names[i] })
		case 1:
			rec.Kind = KindSuccess
			rec.Seq, rec.ItemDigest, rec.Finished, rec.Ran, rec.Codec = r.Uint64(), str(), r.Int64(), r.Int64(), str()
			rec.Value = []byte(str())
		case 2:
			rec.Kind = KindFailure
			rec.Seq, rec.ItemDigest, rec.Finished, rec.Ran, rec.Err = r.Uint64(), str(), r.Int64(), r.Int64(), errRec()
		case 4:
			rec.Kind = KindAttempt
			rec.Attempt, rec.Finished, rec.Ran, rec.NextAt, rec.Err = 1+r.IntN(9), r.Int64(), r.Int64(), r.Int64(), errRec()
		case 3:
			rec.Kind = KindDecision
			rec.Decided, rec.Reason = r.Int64(), uint8(1+r.IntN(MaxReason))
			for i := range 1 + r.IntN(5) {
				s := uint8(1 + r.IntN(MaxStatus))
				rec.Statuses = append(rec.Statuses, s)
				if s == StatusFailed {
					rec.Failures = append(rec.Failures, Failure{Index: i, Err: errRec()})
				}
			}
			rec.Winner = r.IntN(len(rec.Statuses)+1) - 1
		}
		out = append(out, rec)
	}
	return out
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i, rec := range randomRecords(r, 2000) {
		key := "exec/batch/" + strings.Repeat("k", i%7)
		b := rec.Encode(key)
		got, err := Decode(key, b)
		if err != nil {
			t.Fatalf("record %d (%c): %v", i, rec.Kind, err)
		}
		if again := got.Encode(key); !bytes.Equal(again, b) {
			t.Fatalf("record %d (%c): decode then encode differs:\n%x\n%x", i, rec.Kind, b, again)
		}
	}
}

// Every single-bit change of a record, or of the key it is read under, fails
// its checksum: CRC-32C detects every error of up to three bits.
func TestEveryBitFlipIsCorrupt(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i, rec := range randomRecords(r, 200) {
		key := "order-7/charge/" + string(rune('a'+i%26))
		b := rec.Encode(key)
		for bit := range 8 * len(b) {
			flipped := bytes.Clone(b)
			flipped[bit/8] ^= 1 << (bit % 8)
			if _, err := Decode(key, flipped); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), strconv.Quote(key)) {
				t.Fatalf("record %d (%c), value bit %d flipped: %v", i, rec.Kind, bit, err)
			}
		}
		for bit := range 8 * len(key) {
			k := []byte(key)
			k[bit/8] ^= 1 << (bit % 8)
			if _, err := Decode(string(k), b); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), strconv.Quote(string(k))) {
				t.Fatalf("record %d (%c), key bit %d flipped: %v", i, rec.Kind, bit, err)
			}
		}
	}
}

func TestVersion1IsRead(t *testing.T) {
	// Records written by version 1 (testdata/journal-v1.json at the root).
	for _, tc := range []struct {
		b    []byte
		kind byte
	}{
		{[]byte{1, 's', 0, 0, '3', '5'}, KindSuccess},
		{append([]byte{1, 'f', 1, 0, 5}, "*Ebad\x03msg"...), KindFailure},
		{[]byte{1, 'd', 2, 1, 1, 1, 0}, KindDecision},
	} {
		rec, err := Decode("any/key", tc.b)
		if err != nil {
			t.Fatalf("%x: %v", tc.b, err)
		}
		if rec.Version != Version1 || rec.Kind != tc.kind {
			t.Fatalf("%x: version %d kind %c", tc.b, rec.Version, rec.Kind)
		}
	}
}

func TestMalformedRecords(t *testing.T) {
	rec := &Record{Kind: KindSuccess, Value: []byte("1")}
	b := rec.Encode("k")
	for cut := range len(b) {
		if _, err := Decode("k", b[:cut]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("cut to %d: %v", cut, err)
		}
	}
	bad := Begin(nil, 'z')
	Seal(bad, "k")
	if _, err := Decode("k", bad); err == nil || !strings.Contains(err.Error(), "unknown kind") {
		t.Errorf("unknown kind: %v", err)
	}
	if _, err := Decode("k", append([]byte{3}, b[1:]...)); err == nil || !strings.Contains(err.Error(), "unknown record version 3") {
		t.Errorf("unknown version: %v", err)
	}
	// A version 2 decision whose failure names a branch that did not fail.
	d := &Record{Kind: KindDecision, Reason: 1, Winner: -1, Statuses: []uint8{1}, Failures: []Failure{{Index: 0}}}
	if _, err := Decode("k", d.Encode("k")); err == nil || !strings.Contains(err.Error(), "did not fail") {
		t.Errorf("failure of a branch that succeeded: %v", err)
	}
}

func TestEscape(t *testing.T) {
	names := []string{"a", "a/b", "a%2Fb", "a#2", "!h", "!d", "%", "%25", "a/", "/a", "#", "!", "100%"}
	seen := map[string]string{}
	for _, n := range names {
		e := Escape(n)
		if strings.ContainsAny(e, "/#!") {
			t.Errorf("%q escapes to %q", n, e)
		}
		if prev, dup := seen[e]; dup {
			t.Errorf("%q and %q both escape to %q", prev, n, e)
		}
		seen[e] = n
		if u := Unescape(e); u != n {
			t.Errorf("Unescape(Escape(%q)) = %q", n, u)
		}
	}
}

// go test -run '^$' -fuzz FuzzDecode ./internal/record
func FuzzDecode(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, rec := range randomRecords(r, 40) {
		f.Add("k", rec.Encode("k"))
	}
	f.Add("k", []byte{1, 'd', 3, 0, 200, 200, 200, 200, 200, 200, 200, 200, 200, 1})
	f.Add("", []byte{})
	f.Fuzz(func(t *testing.T, key string, b []byte) {
		rec, err := Decode(key, b)
		sameAsDecodeSuccess(t, key, b, rec, err)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("an error that is not ErrCorrupt: %v", err)
			}
			return
		}
		re := rec.Encode(key)
		rec2, err := Decode(key, re)
		if err != nil {
			t.Fatalf("a re-encoded record does not decode: %v\nfirst: %x\nagain: %x", err, b, re)
		}
		if re2 := rec2.Encode(key); !bytes.Equal(re, re2) {
			t.Fatalf("decode→encode→decode→encode differs:\n%x\n%x", re, re2)
		}
	})
}

// The checksum is the CRC-32C of the key's length as a uvarint, the key and
// the body, computed without allocating.
func TestChecksumIsCRC32COfLengthKeyAndBody(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 300, 20000} {
		key := strings.Repeat("k", n)
		body := []byte("body")
		want := crc32.Checksum(append(append(binary.AppendUvarint(nil, uint64(n)), key...), body...), crc32.MakeTable(crc32.Castagnoli))
		if got := checksum(key, body); got != want {
			t.Errorf("key of %d bytes: %08x, want %08x", n, got, want)
		}
	}
	value := []byte("value")
	if a := testing.AllocsPerRun(100, func() { checksum("exec/batch/branch", value) }); a != 0 {
		t.Errorf("%v allocations", a)
	}
}

// sameAsDecodeSuccess checks that DecodeSuccess reads b as Decode did: the
// same error, or the same fields for a success, or false for another kind.
func sameAsDecodeSuccess(t *testing.T, key string, b []byte, rec *Record, err error) {
	t.Helper()
	var s Success
	ok, serr := DecodeSuccess(key, b, &s)
	switch {
	case err != nil:
		// A record of another kind is Decode's to read, whatever its body.
		otherKind := !ok && serr == nil && headerKind(b) != KindSuccess
		if !otherKind && (serr == nil || serr.Error() != err.Error()) {
			t.Fatalf("%x: Decode: %v; DecodeSuccess: %v, %v", b, err, ok, serr)
		}
	case serr != nil:
		t.Fatalf("%x: Decode: a %c record; DecodeSuccess: %v", b, rec.Kind, serr)
	case ok != (rec.Kind == KindSuccess):
		t.Fatalf("%x: Decode: a %c record; DecodeSuccess: %v", b, rec.Kind, ok)
	case ok && (s.Version != rec.Version || s.Seq != rec.Seq || string(s.ItemDigest) != rec.ItemDigest || s.Finished != rec.Finished ||
		s.Ran != rec.Ran || string(s.Codec) != rec.Codec || !bytes.Equal(s.Value, rec.Value)):
		t.Fatalf("%x: Decode: %+v; DecodeSuccess: %+v", b, rec, s)
	}
}

// DecodeSuccess reads every record as Decode does, and its cuts and bit flips.
func TestDecodeSuccessAgreesWithDecode(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i, rec := range randomRecords(r, 400) {
		key := "exec/batch/" + strconv.Itoa(i)
		b := rec.Encode(key)
		variants := [][]byte{b}
		for cut := range len(b) {
			variants = append(variants, b[:cut])
		}
		for range 16 {
			flipped := bytes.Clone(b)
			bit := r.IntN(8 * len(b))
			flipped[bit/8] ^= 1 << (bit % 8)
			variants = append(variants, flipped)
		}
		for _, v := range variants {
			got, err := Decode(key, v)
			sameAsDecodeSuccess(t, key, v, got, err)
		}
	}
}

func TestDecodeSuccessAllocatesNothing(t *testing.T) {
	key := "exec/steps/42"
	b := (&Record{Kind: KindSuccess, Seq: 42, ItemDigest: strings.Repeat("d", 16), Finished: 1e18, Ran: 1e6, Value: []byte(`{"I":42}`)}).Encode(key)
	var s Success
	if n := testing.AllocsPerRun(100, func() {
		if ok, err := DecodeSuccess(key, b, &s); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per call", n)
	}
}

// headerKind is the kind byte of a record whose header is there, or 0.
func headerKind(b []byte) byte {
	switch {
	case len(b) >= header && b[0] == Version:
		return b[header-1]
	case len(b) >= 2 && b[0] == Version1:
		return b[1]
	}
	return 0
}
