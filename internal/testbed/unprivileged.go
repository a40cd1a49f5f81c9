package testbed

import (
	"os"
	"path/filepath"
	"testing"
)

// UnprivilegedDir returns a new temporary directory that any user, such as
// uid 65534 in a test that drops privileges, can read and enter. It is
// removed when the test ends.
func UnprivilegedDir(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	// TempDir makes the directory and its parent 0700.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// CopyTestBinary copies the running test binary, which sits in a private
// build directory, to name in an UnprivilegedDir, so that a test can run
// it again as an unprivileged user (for example through setpriv), and
// returns its path.
func CopyTestBinary(tb testing.TB, name string) string {
	tb.Helper()
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		tb.Fatal(err)
	}
	exe := filepath.Join(UnprivilegedDir(tb), name)
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		tb.Fatal(err)
	}
	return exe
}
