package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// defaultLogFile is where go-metro logged with log_to_file: true.
const defaultLogFile = "/var/log/datadog/go-metro.log"

// levelOff is above every level: nothing is logged.
const levelOff = slog.Level(1 << 20)

// parseLogLevel maps log_level to a slog level. The Agent's levels are
// accepted: trace logs as much as debug, and critical as little as error,
// since go-metro has nothing finer or more severe.
func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "trace", "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "critical":
		return slog.LevelError, nil
	case "off":
		return levelOff, nil
	}
	return 0, fmt.Errorf("invalid `log_level` %q: must be one of trace, debug, info, warn (or warning), error, critical, off", s)
}

// logSettings are the logging keys of init_config, checked, with the log
// file open when there is one.
type logSettings struct {
	level   slog.Level
	path    string   // "" for standard error
	file    *os.File // open for appending, or nil
	warning string   // logged once the settings apply; "" for none
}

// openLogSettings checks log_level and opens the log file when
// log_to_file is true: log_file, or else defaultPath. A missing directory
// of the file is created with mode 0755, as go-metro did (seelog created
// it); when it cannot be, the settings log to standard error, with a
// warning, rather than keep the daemon from starting.
func openLogSettings(level string, toFile bool, path, defaultPath string) (*logSettings, error) {
	l, err := parseLogLevel(level)
	if err != nil {
		return nil, err
	}
	ls := &logSettings{level: l}
	if !toFile {
		return ls, nil
	}
	if path == "" {
		path = defaultPath
	}
	if err := makeLogDir(filepath.Dir(path)); err != nil {
		ls.warning = fmt.Sprintf("logging to standard error, not to `log_file` %q: %v: create the directory, writable by the user go-metro runs as, or set `log_file`", path, err)
		return ls, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("invalid `log_file` %q: cannot open it: %w: set `log_file` to a file the go-metro user can write, or `log_to_file: false` to log to standard error", path, err)
	}
	ls.path, ls.file = path, f
	return ls, nil
}

// makeLogDir creates dir, mode 0755, and its missing parents, unless it is
// a directory already.
func makeLogDir(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cannot create its directory %s: %w", dir, err)
	}
	return os.Chmod(dir, 0o755) // whatever the umask
}

// close closes the file of settings that were not applied.
func (ls *logSettings) close() {
	if ls != nil && ls.file != nil {
		ls.file.Close()
	}
}

// daemonLog is the daemon's logger, whose level and destination change
// when the configuration is loaded. Its methods are safe for concurrent
// use.
type daemonLog struct {
	logger *slog.Logger
	level  slog.LevelVar
	out    logOutput
	path   string // of the log file; "" for stderr
}

// newDaemonLog returns a logger that writes text to stderr at info level
// until apply is called.
func newDaemonLog(stderr io.Writer) *daemonLog {
	d := &daemonLog{}
	d.out.stderr, d.out.w = stderr, stderr
	d.logger = slog.New(slog.NewTextHandler(&d.out, &slog.HandlerOptions{Level: &d.level}))
	return d
}

// apply switches to ls, and closes the log file used until now, if
// different. Called with the same path again, it switches to the newly
// opened file: a SIGHUP after logrotate moved the file reopens it.
func (d *daemonLog) apply(ls *logSettings) {
	d.level.Set(ls.level)
	d.path = ls.path
	d.out.set(ls.file)
	if ls.warning != "" {
		d.logger.Warn(ls.warning)
	}
}

// reopen opens the log file again, for logrotate, when the configuration
// could not be reloaded. On failure it keeps the file open until now.
func (d *daemonLog) reopen() {
	if d.path == "" {
		return
	}
	f, err := os.OpenFile(d.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		d.logger.Error("cannot reopen the log file", "error", err)
		return
	}
	d.out.set(f)
}

// close closes the log file, if any, and logs to stderr from then on.
func (d *daemonLog) close() {
	d.out.set(nil)
}

// logOutput is an io.Writer whose destination can change.
type logOutput struct {
	mu     sync.Mutex
	stderr io.Writer
	w      io.Writer
	file   *os.File
	failed *os.File // the file a write last failed on (see write)
}

func (o *logOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.write(p)
}

// set writes to f from now on, or to stderr when f is nil, and closes
// the previous file.
func (o *logOutput) set(f *os.File) {
	o.mu.Lock()
	old := o.file
	o.file, o.w = f, o.stderr
	if f != nil {
		o.w = f
	}
	o.mu.Unlock()
	if old != nil && old != f {
		old.Close()
	}
}
