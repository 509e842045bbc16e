package durable

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Journal keys and records.
//
// A key is the path from the execution to the entry, each name escaped so that no
// name can forge a separator:
//
//	<execution>/<combinator>/<branch>              a branch's outcome
//	<execution>/<combinator>/!h                    the combinator's head
//	<execution>/<combinator>/!d                    its decision (Settle, Race, Any)
//	<execution>/<combinator>/<branch>/<step>       a step run inside the branch
//
// Escaping replaces '%', '/', '#' and '!' with %25, %2F, %23 and %21. A name used
// again in the same scope gets the suffix #2, #3, ... in call order.
//
// A record is a version byte (1), a kind byte and a body; integers are varints
// and strings are a uvarint length followed by bytes:
//
//	'h' head:     start (unix ns, varint) | count (uvarint) | set digest (32 bytes) |
//	              order digest (32 bytes) |
//	              names (uvarint n, then n strings; n is 0 for huge sets)
//	's' success:  seq (uvarint) | item digest (string) | value (rest: JSON)
//	'f' failure:  seq (uvarint) | item digest (string) | type name (string) |
//	              message (string)
//	'd' decision: reason (byte) | winner+1 (uvarint) | n (uvarint) |
//	              n status bytes | failures (uvarint k, then k times:
//	              index (uvarint) | type name (string) | message (string))
const recordVersion = 1

const (
	kindHead     = 'h'
	kindSuccess  = 's'
	kindFailure  = 'f'
	kindDecision = 'd'
)

// maxNamesInHead bounds the branch names kept in a head record: above it only
// the digest is kept.
const maxNamesInHead = 4096

var nameEscaper = strings.NewReplacer("%", "%25", "/", "%2F", "#", "%23", "!", "%21")

func escapeName(name string) string {
	if !strings.ContainsAny(name, "%/#!") {
		return name
	}
	return nameEscaper.Replace(name)
}

// record is the decoded form of every kind.
type record struct {
	kind byte

	// head
	start  int64
	count  int
	digest [32]byte // the set of branch names
	order  [32]byte // the names in input order
	names  []string

	// success and failure
	seq        uint64
	itemDigest string
	value      []byte
	typeName   string
	msg        string

	// decision
	reason   Reason
	winner   int // -1: none
	statuses []Status
	failures []failureRec
}

type failureRec struct {
	index    int
	typeName string
	msg      string
}

func (r *record) encode() []byte {
	b := make([]byte, 0, 16+len(r.value)+len(r.msg)+len(r.itemDigest))
	b = append(b, recordVersion, r.kind)
	switch r.kind {
	case kindHead:
		b = binary.AppendVarint(b, r.start)
		b = binary.AppendUvarint(b, uint64(r.count))
		b = append(b, r.digest[:]...)
		b = append(b, r.order[:]...)
		b = binary.AppendUvarint(b, uint64(len(r.names)))
		for _, n := range r.names {
			b = appendString(b, n)
		}
	case kindSuccess:
		b = appendSuccessHead(b[:0], r.seq, r.itemDigest)
		b = append(b, r.value...)
	case kindFailure:
		b = binary.AppendUvarint(b, r.seq)
		b = appendString(b, r.itemDigest)
		b = appendString(b, r.typeName)
		b = appendString(b, r.msg)
	case kindDecision:
		b = append(b, byte(r.reason))
		b = binary.AppendUvarint(b, uint64(r.winner+1))
		b = binary.AppendUvarint(b, uint64(len(r.statuses)))
		for _, s := range r.statuses {
			b = append(b, byte(s))
		}
		b = binary.AppendUvarint(b, uint64(len(r.failures)))
		for _, f := range r.failures {
			b = binary.AppendUvarint(b, uint64(f.index))
			b = appendString(b, f.typeName)
			b = appendString(b, f.msg)
		}
	}
	return b
}

// appendSuccessHead appends a success record up to its value, which follows.
func appendSuccessHead(b []byte, seq uint64, itemDigest string) []byte {
	b = append(b, recordVersion, kindSuccess)
	b = binary.AppendUvarint(b, seq)
	return appendString(b, itemDigest)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// errCorrupt is wrapped by every decoding error; the engine adds the key.
var errCorrupt = errors.New("corrupt journal record")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errCorrupt, what)
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad " + what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length no larger than limit.
func (d *decoder) count(what string, limit int) int {
	v := d.uvarint(what)
	if v > uint64(limit) {
		d.fail(what + " out of range")
		return 0
	}
	return int(v)
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad " + what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail("truncated " + what)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(what string) string {
	return string(d.bytes(d.count(what, len(d.b)), what))
}

func (d *decoder) byte(what string) byte {
	v := d.bytes(1, what)
	if v == nil {
		return 0
	}
	return v[0]
}

// decodeRecord parses a record. It never panics; a malformed record gives an
// error wrapping errCorrupt.
func decodeRecord(b []byte) (*record, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: %d bytes", errCorrupt, len(b))
	}
	if b[0] != recordVersion {
		return nil, fmt.Errorf("%w: unknown version %d", errCorrupt, b[0])
	}
	r := &record{kind: b[1], winner: -1}
	d := &decoder{b: b[2:]}
	switch r.kind {
	case kindHead:
		r.start = d.varint("start time")
		r.count = d.count("branch count", maxInt)
		copy(r.digest[:], d.bytes(32, "digest"))
		copy(r.order[:], d.bytes(32, "order digest"))
		n := d.count("name count", len(d.b))
		if n > 0 {
			r.names = make([]string, 0, n)
		}
		for range n {
			r.names = append(r.names, d.string("name"))
		}
		if d.err == nil && len(r.names) > 0 && len(r.names) != r.count {
			d.fail("head names disagree with its count")
		}
	case kindSuccess:
		r.seq = d.uvarint("sequence")
		r.itemDigest = d.string("item digest")
		if d.err == nil {
			r.value = d.b
			d.b = nil
		}
	case kindFailure:
		r.seq = d.uvarint("sequence")
		r.itemDigest = d.string("item digest")
		r.typeName = d.string("type name")
		r.msg = d.string("message")
	case kindDecision:
		r.reason = Reason(d.byte("reason"))
		if d.err == nil && (r.reason < ReasonAllCompleted || r.reason > ReasonTimedOut) {
			d.fail(fmt.Sprintf("unknown reason %d", r.reason))
		}
		r.winner = d.count("winner", maxInt) - 1
		n := d.count("status count", len(d.b))
		for _, s := range d.bytes(n, "statuses") {
			if Status(s) < StatusSucceeded || Status(s) > StatusNotStarted {
				d.fail(fmt.Sprintf("unknown status %d", s))
			}
			r.statuses = append(r.statuses, Status(s))
		}
		if d.err == nil && r.winner >= n {
			d.fail("winner out of range")
		}
		k := d.count("failure count", len(d.b))
		for range k {
			if n == 0 {
				d.fail("failure recorded without statuses")
				break
			}
			f := failureRec{index: d.count("failure index", n-1)}
			f.typeName = d.string("type name")
			f.msg = d.string("message")
			if d.err == nil && n > 0 && r.statuses[f.index] != StatusFailed {
				d.fail("failure recorded for a branch that did not fail")
			}
			r.failures = append(r.failures, f)
		}
	default:
		return nil, fmt.Errorf("%w: unknown kind %q", errCorrupt, r.kind)
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)))
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}

const maxInt = int(^uint(0) >> 1)

// nameDigest identifies a set of branch names, whatever their order: the
// wrapping sum of the names' SHA-256 digests, read as four 64-bit words.
func nameDigest(n int, name func(int) string) [32]byte {
	var sum [4]uint64
	for i := range n {
		h := sha256.Sum256([]byte(name(i)))
		for w := range sum {
			sum[w] += binary.LittleEndian.Uint64(h[8*w:])
		}
	}
	var d [32]byte
	for w, v := range sum {
		binary.LittleEndian.PutUint64(d[8*w:], v)
	}
	return d
}

// orderDigest identifies a list of branch names in order.
func orderDigest(n int, name func(int) string) [32]byte {
	h := sha256.New()
	var buf [binary.MaxVarintLen64]byte
	for i := range n {
		s := name(i)
		h.Write(binary.AppendUvarint(buf[:0], uint64(len(s))))
		h.Write([]byte(s))
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// newHead is the head of a batch of n branches. A nil name means branches named
// by their index: the count says it all, and the digests stay zero.
func newHead(start time.Time, n int, name func(int) string) *record {
	r := &record{kind: kindHead, start: start.UnixNano(), count: n}
	if name == nil {
		return r
	}
	r.digest, r.order = nameDigest(n, name), orderDigest(n, name)
	if n <= maxNamesInHead {
		r.names = make([]string, n)
		for i := range n {
			r.names[i] = name(i)
		}
	}
	return r
}

// diffHead explains how the branch set asked for differs from a journaled head,
// or returns "" when they agree.
func diffHead(h *record, n int, name func(int) string) string {
	if name == nil { // named by index
		switch {
		case h.digest != [32]byte{}:
			return "the journal holds branches named by key, the code names them by index"
		case h.count != n:
			return fmt.Sprintf("the journal holds %d branches, the code asks for %d", h.count, n)
		}
		return ""
	}
	if h.count == n && h.digest == nameDigest(n, name) {
		return ""
	}
	if h.names == nil || n > maxNamesInHead {
		return fmt.Sprintf("the journal holds %d branches, the code asks for %d, and their names differ", h.count, n)
	}
	had := make(map[string]bool, len(h.names))
	for _, s := range h.names {
		had[s] = true
	}
	var added, removed []string
	now := make(map[string]bool, n)
	for i := range n {
		s := name(i)
		now[s] = true
		if !had[s] {
			added = append(added, s)
		}
	}
	for _, s := range h.names {
		if !now[s] {
			removed = append(removed, s)
		}
	}
	if len(added) == 0 && len(removed) == 0 {
		return "" // the same set, in another order
	}
	return fmt.Sprintf("the journal holds %s not asked for now; the code asks for %s not in the journal",
		quoteSome(removed), quoteSome(added))
}

func quoteSome(names []string) string {
	if len(names) == 0 {
		return "nothing"
	}
	const show = 5
	var b strings.Builder
	for i, s := range names {
		if i == show {
			fmt.Fprintf(&b, " and %d more", len(names)-show)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", s)
	}
	return b.String()
}
