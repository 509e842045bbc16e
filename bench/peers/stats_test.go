package peers

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// spread is the minimum, median and maximum of some durations.
type spread struct {
	min, median, max time.Duration
	n                int
}

func spreadOf(ds []time.Duration) spread {
	if len(ds) == 0 {
		return spread{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + m) / 2
	}
	return spread{min: s[0], median: m, max: s[len(s)-1], n: len(s)}
}

// ratio is a's median over b's, or 0 when either is missing.
func ratio(a, b spread) float64 {
	if a.n == 0 || b.n == 0 || b.median == 0 {
		return 0
	}
	return float64(a.median) / float64(b.median)
}

// fmtDuration prints d with three significant digits in a unit that suits it.
func fmtDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return sig3(d.Seconds()) + " s"
	case d >= time.Millisecond:
		return sig3(float64(d)/1e6) + " ms"
	default:
		return sig3(float64(d)/1e3) + " µs"
	}
}

func sig3(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

func fmtRatio(r float64) string {
	if r == 0 {
		return ""
	}
	return sig3(r) + "×"
}

func fmtInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

func TestSpread(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		ds := make([]time.Duration, len(xs))
		for i, x := range xs {
			ds[i] = time.Duration(x) * time.Millisecond
		}
		return ds
	}
	for _, tc := range []struct {
		in   []time.Duration
		want spread
	}{
		{nil, spread{}},
		{ms(5), spread{5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond, 1}},
		{ms(9, 1, 5), spread{time.Millisecond, 5 * time.Millisecond, 9 * time.Millisecond, 3}},
		{ms(4, 8, 2, 6), spread{2 * time.Millisecond, 5 * time.Millisecond, 8 * time.Millisecond, 4}},
	} {
		if got := spreadOf(tc.in); got != tc.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	if got := ratio(spreadOf(ms(30)), spreadOf(ms(10))); got != 3 {
		t.Errorf("ratio = %v, want 3", got)
	}
	if got := ratio(spreadOf(ms(30)), spread{}); got != 0 {
		t.Errorf("ratio against nothing = %v, want 0", got)
	}
}

func TestFmtDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		420 * time.Microsecond:   "420 µs",
		7612 * time.Millisecond:  "7.61 s",
		54321 * time.Microsecond: "54.3 ms",
		62 * time.Second:         "62.0 s",
		1500 * time.Nanosecond:   "1.50 µs",
	} {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
