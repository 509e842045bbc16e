package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The golden files hide durations; their format is checked here.
func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                               "0s",
		840:                             "840ns",
		12345:                           "12.3µs",
		time.Millisecond:                "1ms",
		1250 * time.Microsecond:         "1.25ms",
		999 * time.Millisecond:          "999ms",
		4500 * time.Millisecond:         "4.5s",
		59 * time.Second:                "59s",
		3*time.Minute + 7*time.Second:   "3m07s",
		2*time.Hour + 5*time.Minute:     "2h05m",
		76 * time.Hour:                  "3d04h",
		-1500 * time.Millisecond:        "-1.5s",
		time.Hour - time.Millisecond:    "1h00m", // rounds up into the next unit's format
		59*time.Minute + 59*time.Second: "59m59s",
	} {
		require.Equal(t, want, human(d), "%v", time.Duration(d))
	}
}

func TestPreview(t *testing.T) {
	require.Equal(t, `{"a":1}`, preview(`{"a":1}`))
	require.Equal(t, "a b", preview("a\n  b"))
	long := strings.Repeat("é", 100)
	p := preview(long)
	require.Equal(t, previewLen, len([]rune(p)))
	require.True(t, strings.HasSuffix(p, "…"))
}
