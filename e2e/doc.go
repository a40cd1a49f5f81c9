// Package e2e holds go-metro's end-to-end test: the `go-metro run` daemon,
// built from this repository and run as a child process, captures real TCP
// traffic across a delay line and reports it to a real DogStatsD server,
// statsd_exporter, run inside the test. It is a module of its own, so that
// go-metro does not depend on statsd_exporter. See docs/e2e.md.
package e2e
