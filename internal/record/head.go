package record

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
)

// NameDigest identifies a set of branch names, whatever their order: the
// wrapping sum of the names' SHA-256 digests, read as four 64-bit words.
func NameDigest(n int, name func(int) string) [32]byte {
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

// OrderDigest identifies a list of branch names in order.
func OrderDigest(n int, name func(int) string) [32]byte {
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

// NewHead is the head of a combinator of n branches. A nil name means
// branches named by their index: the count says it all, and the digests stay
// zero.
func NewHead(start int64, combinator, policy string, n int, name func(int) string) *Record {
	r := &Record{Version: Version, Kind: KindHead, Start: start, Combinator: combinator, Policy: policy, Count: n}
	if name == nil {
		return r
	}
	r.Digest, r.Order = NameDigest(n, name), OrderDigest(n, name)
	if n <= MaxNamesInHead {
		r.Names = make([]string, n)
		for i := range n {
			r.Names[i] = name(i)
		}
	}
	return r
}

// DiffHead explains how a combinator asked for now differs from a journaled
// head, or returns "" when they agree. A version 1 head records neither the
// combinator nor its policy: any agree with it.
func DiffHead(h *Record, combinator, policy string, n int, name func(int) string) string {
	if h.Combinator != "" && h.Combinator != combinator {
		return fmt.Sprintf("the journal holds a %s under this name, the code asks for a %s", h.Combinator, combinator)
	}
	if h.Version != Version1 && h.Policy != policy {
		return fmt.Sprintf("the journal holds the completion policy %q, the code asks for %q", h.Policy, policy)
	}
	if name == nil { // named by index
		switch {
		case h.Digest != [32]byte{}:
			return "the journal holds branches named by key, the code names them by index"
		case h.Count != n:
			return fmt.Sprintf("the journal holds %d branches, the code asks for %d", h.Count, n)
		}
		return ""
	}
	if h.Count == n && h.Digest == NameDigest(n, name) {
		return ""
	}
	if h.Names == nil || n > MaxNamesInHead {
		return fmt.Sprintf("the journal holds %d branches, the code asks for %d, and their names differ", h.Count, n)
	}
	had := make(map[string]bool, len(h.Names))
	for _, s := range h.Names {
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
	for _, s := range h.Names {
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
