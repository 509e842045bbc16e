package sqlitejournal_test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable/journal/sqlitejournal"
)

// Open refuses a file it cannot write, rather than failing the first Put
// once a wave of branches has run. As root, whom file modes do not stop, the
// check runs in a child process as the user nobody.
func TestOpenRefusesAFileItCannotWrite(t *testing.T) {
	if path := os.Getenv("DURABLE_READONLY_CHILD"); path != "" {
		_, err := sqlitejournal.Open(path)
		require.ErrorContains(t, err, "cannot be written")
		return
	}
	dir, err := os.MkdirTemp("", "sqlitejournal-readonly")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o777)) // the directory is writable: the file is not
	path := filepath.Join(dir, "j.db")
	j, err := sqlitejournal.Open(path)
	require.NoError(t, err)
	require.NoError(t, j.Close())
	require.NoError(t, os.Chmod(path, 0o444))

	if os.Geteuid() != 0 {
		_, err := sqlitejournal.Open(path)
		require.ErrorContains(t, err, "cannot be written")
		return
	}
	runuser, err := exec.LookPath("runuser")
	if err != nil {
		t.Skip("running as root without runuser: file modes cannot be tested")
	}
	// The test binary, where the user nobody can run it.
	bin := filepath.Join(dir, "sqlitejournal.test")
	copyExecutable(t, os.Args[0], bin)
	cmd := exec.Command(runuser, "-u", "nobody", "--", bin, "-test.run=^TestOpenRefusesAFileItCannotWrite$", "-test.v")
	cmd.Env = append(os.Environ(), "DURABLE_READONLY_CHILD="+path)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "--- PASS: TestOpenRefusesAFileItCannotWrite")
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err)
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
}
