// Package check is the go_metro check: it configures a live capture from
// the check's YAML, and on every run drains the per-peer RTT stats and the
// capture's health and submits them through a Sender, whose methods are
// those of the Datadog Agent's sender.Sender.
//
// The same check runs inside a custom Agent build (see agent/), in
// `go-metro check`, and in the standalone `go-metro run` daemon.
package check
