package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/inspect"
)

// previewLen is how many characters of a value show prints.
const previewLen = 60

// palette colours text with ANSI escape codes, or leaves it as it is.
type palette bool

// colours reports whether w should get colours: it is a terminal and
// NO_COLOR is unset or empty (https://no-color.org).
func colours(w io.Writer) palette {
	if os.Getenv("NO_COLOR") != "" {
		return false
	}
	f, ok := w.(*os.File)
	return palette(ok && isTerminal(f))
}

const (
	bold   = "1"
	dim    = "2"
	red    = "31"
	green  = "32"
	yellow = "33"
	cyan   = "36"
)

func (p palette) paint(code, s string) string {
	if !p || s == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p palette) status(s durable.Status) string {
	text := statusText(s)
	switch s {
	case durable.StatusSucceeded:
		return p.paint(green, text)
	case durable.StatusFailed:
		return p.paint(red, text)
	case durable.StatusCancelled:
		return p.paint(yellow, text)
	}
	return p.paint(dim, text)
}

// tree writes an execution's tree as indented text, down to depth (< 0: all).
type tree struct {
	w     io.Writer
	p     palette
	base  time.Time // times are shown as offsets from it
	depth int
}

func writeTree(w io.Writer, root *inspect.Node, depth int, p palette) error {
	t := &tree{w: w, p: p, base: earliest(root), depth: depth}
	line := p.paint(bold, "execution") + " " + p.paint(bold, displayName(root.Name))
	if !t.base.IsZero() {
		line += "  started " + t.base.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	if depth == 0 {
		line += t.omitted(root)
	}
	var b strings.Builder
	b.WriteString(line + "\n")
	t.details(&b, root, "")
	t.children(&b, root, "", 0)
	_, err := io.WriteString(w, b.String())
	return err
}

// children writes n's children, at depth d+1, under prefix.
func (t *tree) children(b *strings.Builder, n *inspect.Node, prefix string, d int) {
	if t.depth >= 0 && d >= t.depth {
		return
	}
	for i, ch := range n.Children {
		last := i == len(n.Children)-1
		branch, next := "├─ ", "│  "
		if last {
			branch, next = "└─ ", "   "
		}
		line := t.label(ch)
		if t.depth >= 0 && d+1 >= t.depth {
			line += t.omitted(ch)
		}
		b.WriteString(t.p.paint(dim, prefix+branch) + line + "\n")
		t.details(b, ch, prefix+next)
		t.children(b, ch, prefix+next, d+1)
	}
}

// omitted notes the nodes under n that --depth hides.
func (t *tree) omitted(n *inspect.Node) string {
	if c := descendants(n); c > 0 {
		return t.p.paint(dim, fmt.Sprintf("  (%d more below)", c))
	}
	return ""
}

// label is a node's line.
func (t *tree) label(n *inspect.Node) string {
	var parts []string
	switch n.Kind {
	case inspect.NodeCombinator:
		parts = append(parts, t.p.paint(bold, n.Combinator)+" "+t.p.paint(cyan, displayName(n.Name)))
		if tally := tally(n); tally != "" {
			parts = append(parts, tally)
		}
		if d := n.Decision; d != nil {
			s := "decided " + d.Reason.String()
			if at := t.at(d.Decided); at != "" {
				s += " at " + at
			}
			if d.Winner != "" {
				s += " by " + displayName(d.Winner)
			}
			parts = append(parts, s)
		}
		if at := t.at(n.Start); at != "" {
			parts = append(parts, "start "+at)
		}
		if n.Policy != "" {
			parts = append(parts, "policy "+n.Policy)
		}
		return strings.Join(parts, "  ")
	case inspect.NodeBranch:
		name := displayName(n.Name)
		if n.Index >= 0 && n.Name != strconv.Itoa(n.Index) {
			name = fmt.Sprintf("[%d] %s", n.Index, name)
		} else {
			name = "[" + name + "]"
		}
		parts = append(parts, name)
	default:
		parts = append(parts, "step "+displayName(n.Name))
	}
	parts = append(parts, t.p.status(n.Status))
	if n.Ran > 0 || !n.Finished.IsZero() {
		parts = append(parts, "ran "+human(n.Ran))
	}
	if at := t.at(n.Finished); at != "" {
		parts = append(parts, "at "+at)
	}
	if len(n.Attempts) > 0 {
		parts = append(parts, count(int64(len(n.Attempts)), "failed attempt", "failed attempts"))
	}
	if v := n.ValueText(); v != "" {
		parts = append(parts, "= "+preview(v))
	}
	if n.Err != nil {
		parts = append(parts, t.p.paint(red, errorText(n.Err)))
	}
	return strings.Join(parts, "  ")
}

// tally counts a combinator's branches by status: "40 branches: 36
// succeeded, 4 failed".
func tally(n *inspect.Node) string {
	counts := map[durable.Status]int64{}
	total := int64(0)
	for _, ch := range n.Children {
		if ch.Kind == inspect.NodeBranch {
			counts[ch.Status]++
			total++
		}
	}
	if total == 0 {
		return ""
	}
	var parts []string
	for _, s := range []durable.Status{durable.StatusSucceeded, durable.StatusFailed, durable.StatusCancelled, durable.StatusNotStarted, 0} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], strings.ToLower(strings.ReplaceAll(statusText(s), "_", " "))))
		}
	}
	return count(total, "branch", "branches") + ": " + strings.Join(parts, ", ")
}

// details writes a node's attempts and corrupt entries under its line.
func (t *tree) details(b *strings.Builder, n *inspect.Node, prefix string) {
	for _, a := range n.Attempts {
		s := fmt.Sprintf("attempt %d failed", a.Attempt)
		if a.Ran > 0 {
			s += "  ran " + human(a.Ran)
		}
		if at := t.at(a.Finished); at != "" {
			s += "  at " + at
		}
		if at := t.at(a.NextAt); at != "" {
			s += "  next " + at
		}
		if a.Err != nil {
			s += "  " + t.p.paint(red, errorText(a.Err))
		}
		b.WriteString(t.p.paint(dim, prefix+"·  ") + s + "\n")
	}
	for _, c := range n.Corrupt {
		b.WriteString(t.p.paint(dim, prefix+"!  ") + t.p.paint(red, "CORRUPT "+strconv.Quote(c.Key)+": "+oneLine(c.Corrupt.Error())) + "\n")
	}
}

// at is a time as an offset from the tree's base, "" for none.
func (t *tree) at(tm time.Time) string {
	if tm.IsZero() || tm.UnixNano() == 0 || t.base.IsZero() {
		return ""
	}
	return "+" + human(tm.Sub(t.base))
}

// earliest is the earliest time the tree knows: a combinator's start, or a
// branch's or step's finish less its running time.
func earliest(root *inspect.Node) time.Time {
	var first time.Time
	note := func(tm time.Time) {
		if !tm.IsZero() && tm.UnixNano() != 0 && (first.IsZero() || tm.Before(first)) {
			first = tm
		}
	}
	root.Walk(func(n *inspect.Node, _ int) {
		note(n.Start)
		if !n.Finished.IsZero() {
			note(n.Finished.Add(-n.Ran))
		}
		for _, a := range n.Attempts {
			if !a.Finished.IsZero() && a.Finished.UnixNano() != 0 {
				note(a.Finished.Add(-a.Ran))
			}
		}
	})
	return first
}

// human formats a duration to three significant digits: 840ns, 12.3µs,
// 1.25ms, 4.5s, then 3m07s, 2h05m, 3d04h.
func human(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + human(-d)
	case d == 0:
		return "0s"
	case d < time.Microsecond:
		return strconv.FormatInt(int64(d), 10) + "ns"
	}
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Microsecond, "µs"}, {time.Millisecond, "ms"}, {time.Second, "s"}} {
		if v := float64(d) / float64(u.unit); v < 999.5 && (u.unit != time.Second || v < 59.95) {
			return sig(v) + u.name
		}
	}
	if r := d.Round(time.Second); r < time.Hour {
		return fmt.Sprintf("%dm%02ds", int(r/time.Minute), int(r%time.Minute/time.Second))
	}
	if r := d.Round(time.Minute); r < 24*time.Hour {
		return fmt.Sprintf("%dh%02dm", int(r/time.Hour), int(r%time.Hour/time.Minute))
	}
	r := d.Round(time.Hour)
	return fmt.Sprintf("%dd%02dh", int(r/(24*time.Hour)), int(r%(24*time.Hour)/time.Hour))
}

// sig formats v, in [1, 999.5), to three significant digits, without
// trailing zeros.
func sig(v float64) string {
	prec := 0
	switch {
	case v < 10:
		prec = 2
	case v < 100:
		prec = 1
	}
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// preview is a value cut to previewLen characters, on one line.
func preview(v string) string {
	v = strings.Join(strings.Fields(v), " ")
	if utf8.RuneCountInString(v) <= previewLen {
		return v
	}
	r := []rune(v)
	return string(r[:previewLen-1]) + "…"
}

func errorText(e *inspect.Error) string {
	s := e.Message
	if e.Type != "" {
		s = e.Type + ": " + s
	}
	if len(e.Sentinels) > 0 { // each "type:message"
		var is []string
		for _, id := range e.Sentinels {
			if _, msg, ok := strings.Cut(id, ":"); ok {
				id = msg
			}
			is = append(is, strconv.Quote(id))
		}
		s += " (errors.Is: " + strings.Join(is, ", ") + ")"
	}
	return oneLine(s)
}

// displayName is a name as text: quoted when it holds spaces or characters
// that do not print, or is empty.
func displayName(name string) string {
	if name == "" {
		return `""`
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return strconv.Quote(name)
		}
	}
	return name
}

// count is n things: "1 entry", "3 entries".
func count(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.FormatInt(n, 10) + " " + many
}
