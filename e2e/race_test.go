//go:build race

package e2e

// raceEnabled says the test runs with the race detector.
const raceEnabled = true
