package main_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// openPTY opens a pseudo-terminal: the side the test reads and writes, and
// the terminal the command gets.
func openPTY(t *testing.T) (control, term *os.File) {
	t.Helper()
	control, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	var unlock int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, control.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); errno != 0 {
		control.Close()
		t.Skipf("unlockpt: %v", errno)
	}
	var n uint32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, control.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); errno != 0 {
		control.Close()
		t.Skipf("ptsname: %v", errno)
	}
	term, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		control.Close()
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	return control, term
}

// runTTY runs the binary with a terminal as standard input and, with
// ttyOut, as standard output; input is typed on the terminal. It returns what
// the terminal showed and what went to the pipes.
func runTTY(t *testing.T, env []string, ttyOut bool, input string, args ...string) (shown string, r result) {
	t.Helper()
	control, term := openPTY(t)
	defer control.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, durableBin, args...)
	cmd.Env = append(environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = term, &stdout, &stderr
	if ttyOut {
		cmd.Stdout = term
	}
	require.NoError(t, cmd.Start())
	term.Close() // the command has its own
	if input != "" {
		_, err := control.WriteString(input)
		require.NoError(t, err)
	}
	read := make(chan string)
	go func() {
		b, _ := io.ReadAll(control) // ends with EIO once the command has exited
		read <- string(b)
	}()
	err := cmd.Wait()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else {
		require.NoError(t, err)
	}
	shown = <-read
	return shown, result{stdout.String(), stderr.String(), code}
}

func TestColours(t *testing.T) {
	f := newSQLite(t)
	args := append([]string{"show", "--depth", "2", nestedID}, f.flags...)

	shown, r := runTTY(t, nil, true, "", args...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, shown, "\x1b[32mSUCCEEDED\x1b[0m")
	require.Contains(t, shown, "\x1b[1mParallel\x1b[0m")

	shown, r = runTTY(t, []string{"NO_COLOR=1"}, true, "", args...)
	require.Equal(t, 0, r.code, r.stderr)
	require.NotContains(t, shown, "\x1b[")
	require.Contains(t, shown, "SUCCEEDED")

	// Piped: no colours, though standard input is a terminal.
	_, r = runTTY(t, nil, false, "", args...)
	require.Equal(t, 0, r.code, r.stderr)
	require.NotContains(t, r.stdout, "\x1b[")
	require.Contains(t, r.stdout, "SUCCEEDED")
}

func TestConfirm(t *testing.T) {
	f := newSQLite(t)
	for _, answer := range []string{"\n", "n\n", "nope\n"} {
		_, r := runTTY(t, nil, false, answer, append([]string{"rm", nestedID}, f.flags...)...)
		require.Equal(t, 1, r.code, "answer %q: %s", answer, r.stdout)
		require.Regexp(t, `^delete execution tenant/7#nightly \(20 entries, last written .* ago\)\? \[y/N\] durable rm: not confirmed: nothing deleted\n$`, r.stderr)
		require.Empty(t, r.stdout)
	}
	require.Contains(t, f.ok(t, "ls"), nestedID)

	_, r := runTTY(t, nil, false, "y\n", append([]string{"rm", nestedID}, f.flags...)...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "deleted execution tenant/7#nightly: 20 entries\n", r.stdout)
	require.NotContains(t, f.ok(t, "ls"), nestedID)

	f.age(t, "damaged", time.Hour)
	_, r = runTTY(t, nil, false, "yes\n", append([]string{"gc", "--older-than", "30m"}, f.flags...)...)
	require.Equal(t, 0, r.code, r.stderr)
	require.True(t, strings.HasPrefix(r.stderr, "delete 1 execution (9 entries), last written before "), r.stderr)
	require.Equal(t, "deleted 1 execution, last written before <time>\n", normalize(r.stdout))
}
