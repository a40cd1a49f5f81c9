// Package accuracy is the end-to-end accuracy suite of go-metro: real TCP
// traffic across a path of known round-trip time, measured by the check as
// the Agent runs it, compared with ping on the same path. The package has
// only tests; docs/accuracy.md shows their latest table and how to
// reproduce it.
package accuracy
