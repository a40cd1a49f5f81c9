// Package types is a stub of the Agent's package of the same path.
//
// It mirrors LogLevel of pkg/util/log/types/levels.go of datadog-agent:
// the Agent's log levels are slog levels.
package types

import "log/slog"

// LogLevel is the type of log levels
type LogLevel slog.Level

// Log levels
const (
	TraceLvl    LogLevel = LogLevel(slog.LevelDebug - 4)
	DebugLvl    LogLevel = LogLevel(slog.LevelDebug)
	InfoLvl     LogLevel = LogLevel(slog.LevelInfo)
	WarnLvl     LogLevel = LogLevel(slog.LevelWarn)
	ErrorLvl    LogLevel = LogLevel(slog.LevelError)
	CriticalLvl LogLevel = LogLevel(slog.LevelError + 4)
	Off         LogLevel = LogLevel(slog.LevelError + 8)
)
