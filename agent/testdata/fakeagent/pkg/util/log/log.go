// Package log is a stub of the Agent's module of the same path.
//
// It mirrors the declarations of pkg/util/log of datadog-agent that the
// go_metro adapter uses: LogLevel, an alias of types.LogLevel, and its
// constants (levels.go); ShouldLog, Debugf, Infof, Warnf and Errorf
// (log.go). This stub logs at info and above, to nowhere.
package log

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/DataDog/datadog-agent/pkg/util/log/types"
)

// LogLevel is the type of log levels
type LogLevel = types.LogLevel

// Log levels
const (
	TraceLvl    LogLevel = types.TraceLvl
	DebugLvl    LogLevel = types.DebugLvl
	InfoLvl     LogLevel = types.InfoLvl
	WarnLvl     LogLevel = types.WarnLvl
	ErrorLvl    LogLevel = types.ErrorLvl
	CriticalLvl LogLevel = types.CriticalLvl
	Off         LogLevel = types.Off
)

// ShouldLog returns whether a given log level should be logged by the default logger
func ShouldLog(lvl LogLevel) bool {
	return slog.Level(lvl) >= slog.Level(InfoLvl)
}

// Debugf logs with format at the debug level
func Debugf(format string, params ...interface{}) {}

// Infof logs with format at the info level
func Infof(format string, params ...interface{}) {}

// Warnf logs with format at the warn level and returns an error containing the formated log message
func Warnf(format string, params ...interface{}) error {
	return errors.New(fmt.Sprintf(format, params...))
}

// Errorf logs with format at the error level and returns an error containing the formated log message
func Errorf(format string, params ...interface{}) error {
	return errors.New(fmt.Sprintf(format, params...))
}
