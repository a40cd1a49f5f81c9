//go:build ignore

// Package gometro is the go_metro core check of the Datadog Agent: an
// adapter that runs github.com/go-metro/go-metro/check inside the Agent.
//
// This file is a template kept in the go-metro repository as
// agent/go_metro.go. agent/install.sh copies it, without the build
// constraint above, to pkg/collector/corechecks/net/gometro/gometro.go in a
// datadog-agent checkout, registers Factory in
// pkg/commonchecks/corechecks.go, and writes the go_library of this file
// (BUILD.bazel, whose deps are the imports below). The constraint keeps it
// out of go-metro's own build, because the Agent's root module is not a
// library. Edit it here and run install.sh again.
//
// It targets the Go check API of Agent 7.85 (the Agent's Go modules at
// v0.85.1; datadog-agent main in May 2026), the API since Agent 7.78.0,
// where the config provider reaches the check:
//
//	check.Check.Configure(senderManager sender.SenderManager, integrationConfigDigest uint64,
//		config, initConfig integration.Data, source, provider string) error
//	(*corechecks.CheckBase).CommonConfigure(senderManager sender.SenderManager,
//		initConfig, instanceConfig integration.Data, source, provider string) error
//	corechecks.RegisterCheck(name string, checkFactory option.Option[func() check.Check])
//
// Agents before 7.78.0 have no provider argument; install.sh removes it from
// the copy when the checkout's CommonConfigure does not take one.
package gometro

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"

	"github.com/DataDog/datadog-agent/comp/core/autodiscovery/integration"
	"github.com/DataDog/datadog-agent/pkg/aggregator/sender"
	"github.com/DataDog/datadog-agent/pkg/collector/check"
	core "github.com/DataDog/datadog-agent/pkg/collector/corechecks"
	"github.com/DataDog/datadog-agent/pkg/util/log"
	"github.com/DataDog/datadog-agent/pkg/util/option"

	metro "github.com/go-metro/go-metro/check"
)

// CheckName is the check's name in conf.d and in `agent status`.
const CheckName = metro.Name

// The Agent's sender has every method of metro.Sender, with the same
// signatures, so Run passes it to the go_metro check as it is.
var _ metro.Sender = sender.Sender(nil)

var _ check.Check = (*Check)(nil)

// Check is one go_metro instance in the Agent: the Agent's CheckBase, for
// the ID, interval, sender and common options, around a go_metro check.
type Check struct {
	core.CheckBase
	metro *metro.Check

	mu       sync.Mutex
	warnings []error // the go_metro check's warnings, until GetWarnings
}

// Factory returns the factory that corechecks.RegisterCheck takes.
func Factory() option.Option[func() check.Check] {
	return option.New(newCheck)
}

func newCheck() check.Check {
	return &Check{
		CheckBase: core.NewCheckBaseWithInterval(CheckName, metro.DefaultInterval),
		metro: &metro.Check{
			Logger:  slog.New(newAgentHandler()),
			InAgent: true,
		},
	}
}

// Configure builds the instance's ID, applies the options every Agent
// check has (min_collection_interval, tags, service,
// empty_default_hostname) through CommonConfigure, then parses and
// validates the go_metro configuration. A panic is returned as an error.
func (c *Check) Configure(senderManager sender.SenderManager, integrationConfigDigest uint64, instance, initConfig integration.Data, source string, provider string) (err error) {
	defer recoverTo(&err, "configure")
	c.BuildID(integrationConfigDigest, instance, initConfig)
	if err := c.CommonConfigure(senderManager, initConfig, instance, source, provider); err != nil {
		return fmt.Errorf("configure %s: %w", CheckName, err)
	}
	s, err := c.GetSender()
	if err != nil {
		return fmt.Errorf("configure %s: get sender: %w", CheckName, err)
	}
	// As CheckBase.Configure does: tag everything with the service set by
	// CommonConfigure.
	s.FinalizeCheckServiceTag()
	c.metro.Logger = slog.New(newAgentHandler()).With("instance", string(c.ID()))
	err = c.metro.Configure(instance, initConfig)
	c.collectWarnings()
	return err
}

// Run submits one interval of go_metro metrics and its service check
// through the Agent's sender; the first run starts the capture. A panic is
// recovered here and returned as the run's error: it must never take the
// Agent down.
func (c *Check) Run() (err error) {
	defer recoverTo(&err, "run")
	defer c.collectWarnings()
	s, err := c.GetSender()
	if err != nil {
		return fmt.Errorf("run %s: get sender: %w", CheckName, err)
	}
	return c.metro.Run(s)
}

// Cancel stops the capture and waits for its goroutines when the instance
// is unscheduled, then cancels the base check.
func (c *Check) Cancel() {
	defer c.CheckBase.Cancel()
	defer recoverLog("cancel")
	c.metro.Cancel()
}

// GetWarnings returns the warnings of Warn and Warnf and those of the
// go_metro check's last Configure or Run, and clears them. The collector
// calls it after every run; `agent status` and `agent check` show each as a
// "Warning:" line of the instance. They are not logged here: the go_metro
// check logs a failing state at Warn once, then at Debug while it lasts,
// where Warn and Warnf would log every warning on every run.
func (c *Check) GetWarnings() []error {
	w := c.CheckBase.GetWarnings()
	c.mu.Lock()
	defer c.mu.Unlock()
	w = append(w, c.warnings...)
	c.warnings = nil
	return w
}

// collectWarnings takes the go_metro check's warnings for GetWarnings.
func (c *Check) collectWarnings() {
	w := c.metro.Warnings()
	c.mu.Lock()
	c.warnings = w
	c.mu.Unlock()
}

// recoverTo recovers a panic of the go_metro check, logs it with its stack
// and sets *err. It must be deferred directly.
func recoverTo(err *error, op string) {
	r := recover()
	if r == nil {
		return
	}
	_ = log.Errorf("%s %s: panic: %v\n%s", op, CheckName, r, debug.Stack())
	*err = fmt.Errorf("%s %s: panic: %v (the stack is in the agent log; please report it)", op, CheckName, r)
}

// recoverLog recovers a panic and logs it with its stack. It must be
// deferred directly.
func recoverLog(op string) {
	if r := recover(); r != nil {
		_ = log.Errorf("%s %s: panic: %v\n%s", op, CheckName, r, debug.Stack())
	}
}

// agentHandler is a slog.Handler that writes to the Agent's log through
// pkg/util/log, which applies the Agent's log level and scrubs secrets.
// Records below Info go to Debug, then Info, Warn and Error. A record
// becomes "message key=value ...", its attributes formatted by a
// slog.TextHandler. Safe for concurrent use.
type agentHandler struct {
	mu   *sync.Mutex   // guards buf, shared by the handlers of With
	buf  *bytes.Buffer // the text handler's output for one record
	text slog.Handler  // writes the attributes, without time, level and message
}

func newAgentHandler() *agentHandler {
	buf := new(bytes.Buffer)
	text := slog.NewTextHandler(buf, &slog.HandlerOptions{
		Level: slog.Level(-128), // Enabled decides
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 {
				switch a.Key {
				case slog.TimeKey, slog.LevelKey, slog.MessageKey:
					return slog.Attr{}
				}
			}
			return a
		},
	})
	return &agentHandler{mu: new(sync.Mutex), buf: buf, text: text}
}

func (h *agentHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || log.ShouldLog(log.DebugLvl)
}

func (h *agentHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	h.buf.Reset()
	err := h.text.Handle(ctx, r)
	line := r.Message
	if attrs := bytes.TrimSpace(h.buf.Bytes()); len(attrs) > 0 {
		line += " " + string(attrs)
	}
	h.mu.Unlock()
	if err != nil {
		return err
	}
	switch {
	case r.Level < slog.LevelInfo:
		log.Debugf("%s", line)
	case r.Level < slog.LevelWarn:
		log.Infof("%s", line)
	case r.Level < slog.LevelError:
		_ = log.Warnf("%s", line)
	default:
		_ = log.Errorf("%s", line)
	}
	return nil
}

func (h *agentHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &agentHandler{mu: h.mu, buf: h.buf, text: h.text.WithAttrs(attrs)}
}

func (h *agentHandler) WithGroup(name string) slog.Handler {
	return &agentHandler{mu: h.mu, buf: h.buf, text: h.text.WithGroup(name)}
}
