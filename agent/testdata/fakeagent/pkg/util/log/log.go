// Package log is a stub of the Agent's module of the same path.
package log

import (
	"errors"
	"fmt"
)

// LogLevel is the type of log levels
type LogLevel int

// Log levels
const (
	TraceLvl LogLevel = iota
	DebugLvl
	InfoLvl
	WarnLvl
	ErrorLvl
	CriticalLvl
	Off
)

// ShouldLog returns whether a given log level should be logged by the default logger
func ShouldLog(lvl LogLevel) bool { return lvl >= InfoLvl }

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
