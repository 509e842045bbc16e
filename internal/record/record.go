// Package record is durable's journal format: the keys under which entries are
// stored and the binary records stored under them. The engine writes and reads
// records through it, and package inspect reads them.
//
// # Keys
//
// A key is the path from the execution to the entry, each name escaped so that
// no name can forge a separator:
//
//	<execution>/<combinator>/<branch>              a branch's outcome
//	<execution>/<combinator>/!h                    the combinator's head
//	<execution>/<combinator>/!d                    its decision (Settle, Race, Any)
//	<execution>/<combinator>/<branch>/<step>       a step run inside the branch
//	<execution>/<step>                             a step run by Step.Run
//	<branch or step>/!a<n>                         its failed attempt n (retries)
//
// [Escape] replaces '%', '/', '#' and '!' with %25, %2F, %23 and %21. A name used
// again in the same scope gets the suffix #2, #3, ... in call order.
//
// # Records, version 2
//
// A record is a version byte (2), a CRC-32C checksum (4 bytes, little-endian),
// a kind byte and a body. The checksum, Castagnoli polynomial, covers the key
// the record is stored under — its length as a uvarint, then its bytes — and
// then every byte of the record after the checksum, so that a record read under
// another key, or with any byte changed, fails it. In the body, integers are
// varints (times: Unix nanoseconds; durations: nanoseconds) and strings are a
// uvarint length followed by bytes:
//
//	'h' head:     start (varint) | combinator (string) | policy (string) |
//	              count (uvarint) | set digest (32 bytes) | order digest (32 bytes) |
//	              names (uvarint n, then n strings; n is 0 for huge sets)
//	's' success:  seq (uvarint) | item digest (string) | finished (varint) |
//	              ran (varint) | codec (string) | value (the rest)
//	'f' failure:  seq (uvarint) | item digest (string) | finished (varint) |
//	              ran (varint) | error
//	'a' attempt:  attempt (uvarint) | finished (varint) | ran (varint) |
//	              next attempt (varint) | error
//	'd' decision: decided (varint) | reason (byte) | winner+1 (uvarint) |
//	              n (uvarint) | n status bytes |
//	              failures (uvarint k, then k times: index (uvarint) | error)
//	error:        type name (string) | message (string) |
//	              sentinels (uvarint m, then m strings)
//
// The combinator is its kind ("Parallel", "Settle", ...), the policy a
// description of its completion rule; both are compared on resume. The codec
// is "" for the default encoding/json and the codec's Go type otherwise.
// Sentinels name the registered sentinel errors the failure matched.
//
// # Records, version 1
//
// Version 1 records are read, never written. They have no checksum and fewer
// fields: a version byte (1), a kind byte, then
//
//	'h' head:     start | count | set digest | order digest | names
//	's' success:  seq | item digest | value (the rest: JSON)
//	'f' failure:  seq | item digest | type name | message
//	'd' decision: reason | winner+1 | n | n status bytes |
//	              failures (k, then k times: index | type name | message)
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"unsafe"
)

// Versions of the record format.
const (
	Version1 = 1
	Version  = 2 // the version written
)

// Kinds of records.
const (
	KindHead     = 'h'
	KindSuccess  = 's'
	KindFailure  = 'f'
	KindDecision = 'd'
	KindAttempt  = 'a'
)

// Keys of a combinator's own entries, under its prefix, and of a step's
// failed attempts, under its key ("!a1", "!a2", ...).
const (
	HeadSegment     = "!h"
	DecisionSegment = "!d"
	AttemptSegment  = "!a"
)

// MaxNamesInHead bounds the branch names kept in a head record: above it only
// the digests are kept.
const MaxNamesInHead = 4096

// ErrCorrupt is wrapped by every error about a record that fails its checksum or
// does not decode.
var ErrCorrupt = errors.New("durable: corrupt journal entry")

var (
	escaper   = strings.NewReplacer("%", "%25", "/", "%2F", "#", "%23", "!", "%21")
	unescaper = strings.NewReplacer("%25", "%", "%2F", "/", "%23", "#", "%21", "!")
)

// Escape is the key segment of a name.
func Escape(name string) string {
	if !strings.ContainsAny(name, "%/#!") {
		return name
	}
	return escaper.Replace(name)
}

// Unescape is the name of a key segment written by Escape.
func Unescape(seg string) string {
	if !strings.Contains(seg, "%") {
		return seg
	}
	return unescaper.Replace(seg)
}

// Record is the decoded form of every kind of record. Fields that a kind does
// not use are zero.
type Record struct {
	Version byte
	Kind    byte

	// head
	Start      int64  // Unix nanoseconds
	Combinator string // "Parallel", "Settle", ...; "" in version 1
	Policy     string // the completion rule; "" in version 1
	Count      int
	Digest     [32]byte // the set of branch names
	Order      [32]byte // the names in input order
	Names      []string

	// success and failure
	Seq        uint64
	ItemDigest string
	Finished   int64 // Unix nanoseconds; 0 in version 1
	Ran        int64 // nanoseconds; 0 in version 1
	Codec      string
	Value      []byte
	Err        Error

	// attempt
	Attempt int   // the failed attempt's number, from 1
	NextAt  int64 // when the next attempt may start, Unix nanoseconds

	// decision
	Decided  int64 // Unix nanoseconds; 0 in version 1
	Reason   uint8
	Winner   int // -1: none
	Statuses []uint8
	Failures []Failure
}

// Error is a failure as journaled.
type Error struct {
	TypeName  string
	Message   string
	Sentinels []string
}

// Failure is a failed branch in a decision, by its index in the head's order.
type Failure struct {
	Index int
	Err   Error
}

// header is the length of a version 2 record's version, checksum and kind.
const header = 6

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum is the CRC-32C of key's length as a uvarint, key and body, a
// version 2 record after its checksum. It allocates nothing: it runs for every
// record written and read.
func checksum(key string, body []byte) uint32 {
	// The length, a byte at a time: a slice of a local array passed to
	// crc32.Update would escape to the heap.
	c := ^uint32(0)
	n := uint64(len(key))
	for n >= 0x80 {
		c = castagnoli[byte(c)^(byte(n)|0x80)] ^ c>>8
		n >>= 7
	}
	c = castagnoli[byte(c)^byte(n)] ^ c>>8
	// crc32.Update reads the key's bytes and keeps nothing.
	c = crc32.Update(^c, castagnoli, unsafe.Slice(unsafe.StringData(key), len(key)))
	return crc32.Update(c, castagnoli, body)
}

// Begin appends the start of a version 2 record of the given kind to b; the
// body follows, then [Seal].
func Begin(b []byte, kind byte) []byte {
	return append(b, Version, 0, 0, 0, 0, kind)
}

// Seal writes the checksum of rec, a record begun with Begin, stored under key.
func Seal(rec []byte, key string) {
	binary.LittleEndian.PutUint32(rec[1:5], checksum(key, rec[5:]))
}

// AppendSuccessHead appends a success record up to its value, which follows;
// then Seal.
func AppendSuccessHead(b []byte, seq uint64, itemDigest string, finished, ran int64, codec string) []byte {
	b = Begin(b, KindSuccess)
	b = binary.AppendUvarint(b, seq)
	b = AppendString(b, itemDigest)
	b = binary.AppendVarint(b, finished)
	b = binary.AppendVarint(b, ran)
	return AppendString(b, codec)
}

// AppendString appends s as a uvarint length and its bytes.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendError(b []byte, e Error) []byte {
	b = AppendString(b, e.TypeName)
	b = AppendString(b, e.Message)
	b = binary.AppendUvarint(b, uint64(len(e.Sentinels)))
	for _, s := range e.Sentinels {
		b = AppendString(b, s)
	}
	return b
}

// Encode returns r as a version 2 record stored under key, whatever r.Version.
func (r *Record) Encode(key string) []byte {
	b := make([]byte, 0, 24+len(r.Value)+len(r.Err.Message)+len(r.ItemDigest))
	b = r.appendBody(Begin(b, r.Kind))
	Seal(b, key)
	return b
}

func (r *Record) appendBody(b []byte) []byte {
	switch r.Kind {
	case KindHead:
		b = binary.AppendVarint(b, r.Start)
		b = AppendString(b, r.Combinator)
		b = AppendString(b, r.Policy)
		b = binary.AppendUvarint(b, uint64(r.Count))
		b = append(b, r.Digest[:]...)
		b = append(b, r.Order[:]...)
		b = binary.AppendUvarint(b, uint64(len(r.Names)))
		for _, n := range r.Names {
			b = AppendString(b, n)
		}
	case KindSuccess:
		b = binary.AppendUvarint(b, r.Seq)
		b = AppendString(b, r.ItemDigest)
		b = binary.AppendVarint(b, r.Finished)
		b = binary.AppendVarint(b, r.Ran)
		b = AppendString(b, r.Codec)
		b = append(b, r.Value...)
	case KindFailure:
		b = binary.AppendUvarint(b, r.Seq)
		b = AppendString(b, r.ItemDigest)
		b = binary.AppendVarint(b, r.Finished)
		b = binary.AppendVarint(b, r.Ran)
		b = appendError(b, r.Err)
	case KindAttempt:
		b = binary.AppendUvarint(b, uint64(r.Attempt))
		b = binary.AppendVarint(b, r.Finished)
		b = binary.AppendVarint(b, r.Ran)
		b = binary.AppendVarint(b, r.NextAt)
		b = appendError(b, r.Err)
	case KindDecision:
		b = binary.AppendVarint(b, r.Decided)
		b = append(b, r.Reason)
		b = binary.AppendUvarint(b, uint64(r.Winner+1))
		b = binary.AppendUvarint(b, uint64(len(r.Statuses)))
		b = append(b, r.Statuses...)
		b = binary.AppendUvarint(b, uint64(len(r.Failures)))
		for _, f := range r.Failures {
			b = binary.AppendUvarint(b, uint64(f.Index))
			b = appendError(b, f.Err)
		}
	}
	return b
}

// Verify checks the checksum of a version 2 record stored under key without
// decoding it. Version 1 records have none and pass.
func Verify(key string, b []byte) error {
	if len(b) > 0 && b[0] == Version1 {
		return nil
	}
	if len(b) < header {
		return corrupt(key, fmt.Sprintf("%d bytes", len(b)))
	}
	if b[0] != Version {
		return corrupt(key, fmt.Sprintf("unknown record version %d", b[0]))
	}
	if binary.LittleEndian.Uint32(b[1:5]) != checksum(key, b[5:]) {
		return corrupt(key, "checksum mismatch")
	}
	return nil
}

func corrupt(key, what string) error {
	return fmt.Errorf("%w: journal key %q: %s", ErrCorrupt, key, what)
}

// Decode parses the record stored under key. It never panics; a record that
// fails its checksum or does not decode gives an error that wraps ErrCorrupt
// and names the key. A success's Value aliases b.
func Decode(key string, b []byte) (*Record, error) {
	if err := Verify(key, b); err != nil {
		return nil, err
	}
	if len(b) < 2 {
		return nil, corrupt(key, fmt.Sprintf("%d bytes", len(b)))
	}
	r := &Record{Version: b[0], Winner: -1}
	d := &decoder{b: b[2:]}
	if r.Version == Version {
		d.b = b[header:]
		r.Kind = b[header-1]
	} else {
		r.Kind = b[1]
	}
	v2 := r.Version == Version
	switch r.Kind {
	case KindHead:
		r.Start = d.varint("start time")
		if v2 {
			r.Combinator = d.string("combinator")
			r.Policy = d.string("policy")
		}
		r.Count = d.count("branch count", maxInt)
		copy(r.Digest[:], d.bytes(32, "digest"))
		copy(r.Order[:], d.bytes(32, "order digest"))
		n := d.count("name count", len(d.b))
		if n > 0 {
			r.Names = make([]string, 0, n)
		}
		for range n {
			r.Names = append(r.Names, d.string("name"))
		}
		if d.err == nil && len(r.Names) > 0 && len(r.Names) != r.Count {
			d.fail("head names disagree with its count")
		}
	case KindSuccess:
		var s Success
		d.success(v2, &s)
		r.Seq, r.ItemDigest, r.Finished, r.Ran = s.Seq, string(s.ItemDigest), s.Finished, s.Ran
		r.Codec, r.Value = string(s.Codec), s.Value
	case KindFailure:
		r.Seq = d.uvarint("sequence")
		r.ItemDigest = d.string("item digest")
		if v2 {
			r.Finished = d.varint("finish time")
			r.Ran = d.varint("run time")
		}
		r.Err = d.error(v2)
	case KindAttempt:
		if !v2 {
			return nil, corrupt(key, "an attempt record in version 1")
		}
		r.Attempt = d.count("attempt", maxInt)
		r.Finished = d.varint("finish time")
		r.Ran = d.varint("run time")
		r.NextAt = d.varint("next attempt time")
		r.Err = d.error(true)
		if d.err == nil && r.Attempt < 1 {
			d.fail("attempt 0")
		}
	case KindDecision:
		if v2 {
			r.Decided = d.varint("decision time")
		}
		r.Reason = d.byte("reason")
		if d.err == nil && (r.Reason < 1 || r.Reason > MaxReason) {
			d.fail(fmt.Sprintf("unknown reason %d", r.Reason))
		}
		r.Winner = d.count("winner", maxInt) - 1
		n := d.count("status count", len(d.b))
		r.Statuses = d.bytes(n, "statuses")
		for _, s := range r.Statuses {
			if s < 1 || s > MaxStatus {
				d.fail(fmt.Sprintf("unknown status %d", s))
			}
		}
		if d.err == nil && r.Winner >= n {
			d.fail("winner out of range")
		}
		k := d.count("failure count", len(d.b))
		for range k {
			if n == 0 {
				d.fail("failure recorded without statuses")
				break
			}
			f := Failure{Index: d.count("failure index", n-1)}
			f.Err = d.error(v2)
			if d.err == nil && r.Statuses[f.Index] != StatusFailed {
				d.fail("failure recorded for a branch that did not fail")
			}
			r.Failures = append(r.Failures, f)
		}
	default:
		return nil, corrupt(key, fmt.Sprintf("unknown kind %q", r.Kind))
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)))
	}
	if d.err != nil {
		return nil, corrupt(key, d.err.Error())
	}
	return r, nil
}

// Success is a success record's fields, as DecodeSuccess reads them: its byte
// slices alias the bytes it was decoded from.
type Success struct {
	Version    byte
	Seq        uint64
	ItemDigest []byte
	Finished   int64 // Unix nanoseconds; 0 in version 1
	Ran        int64 // nanoseconds; 0 in version 1
	Codec      []byte
	Value      []byte
}

// DecodeSuccess is Decode for a success record, into s, allocating nothing:
// restoring a batch reads one per branch. For a record of another kind, which
// Decode reads, it reports false and a nil error. It checks what Decode
// checks, and its errors are Decode's.
func DecodeSuccess(key string, b []byte, s *Success) (ok bool, err error) {
	if err := Verify(key, b); err != nil {
		return false, err
	}
	if len(b) < 2 {
		return false, corrupt(key, fmt.Sprintf("%d bytes", len(b)))
	}
	d := decoder{b: b[2:]}
	kind := b[1]
	if b[0] == Version {
		d.b, kind = b[header:], b[header-1]
	}
	if kind != KindSuccess {
		return false, nil
	}
	*s = Success{Version: b[0]}
	d.success(b[0] == Version, s)
	if d.err != nil {
		return false, corrupt(key, d.err.Error())
	}
	return true, nil
}

// success reads a success record's body into s; its value is the rest.
func (d *decoder) success(v2 bool, s *Success) {
	s.Seq = d.uvarint("sequence")
	s.ItemDigest = d.bytes(d.count("item digest", len(d.b)), "item digest")
	if v2 {
		s.Finished = d.varint("finish time")
		s.Ran = d.varint("run time")
		s.Codec = d.bytes(d.count("codec", len(d.b)), "codec")
	}
	if d.err == nil {
		s.Value = d.b
		d.b = nil
	}
}

// The range of the status and reason bytes: durable's Status and Reason.
const (
	StatusFailed = 2
	MaxStatus    = 4
	MaxReason    = 6
)

const maxInt = int(^uint(0) >> 1)

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = errors.New(what)
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

func (d *decoder) error(v2 bool) Error {
	e := Error{TypeName: d.string("type name"), Message: d.string("message")}
	if v2 {
		n := d.count("sentinel count", len(d.b))
		for range n {
			e.Sentinels = append(e.Sentinels, d.string("sentinel"))
		}
	}
	return e
}
