// Command go-metro measures TCP round-trip times passively, from captured
// packets, per remote peer.
//
// Usage:
//
//	go-metro replay [--local ADDR|CIDR]... [--json] FILE...
//	go-metro check [-c FILE] [--interface IF] [--runs N] [--interval D] [--json]
//	go-metro run -c FILE
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

const usage = `go-metro: passive TCP round-trip-time monitoring

Usage:
  go-metro replay [--local ADDR|CIDR]... [--json] FILE...
        RTT per peer from pcap or pcapng files
  go-metro check [-c FILE] [--interface IF] [--runs N] [--interval D] [--json]
        run the go_metro Agent check on live traffic and print what it submits
  go-metro run -c FILE
        run the check as a daemon that sends to DogStatsD, beside the Agent
  go-metro help
`

// errUsage marks an error in the command line: exit status 2.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "replay":
		err = replay(args[1:], stdout, stderr)
	case "check":
		err = checkCmd(args[1:], stdout, stderr)
	case "run":
		err = runCmd(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "go-metro: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "go-metro %s: %v\n", args[0], err)
		switch {
		case errors.Is(err, errUsage):
			return 2
		case errors.Is(err, errIncomplete):
			return 3
		}
		return 1
	}
	return 0
}
