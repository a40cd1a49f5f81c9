package testbed

import (
	"context"
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// pingInterval is the time between echo requests of Ping; intervals below
// 0.2 s need root, which the test bed needs anyway.
const pingInterval = 50 * time.Millisecond

// Ping sends count echo requests from ns to dst with the ping command of
// iputils, one every 50 ms, and returns the median round-trip time of the
// replies. It fails the test if ping is missing or no reply arrives.
func Ping(tb testing.TB, ns *NetNS, dst netip.Addr, count int) time.Duration {
	tb.Helper()
	if count < 1 || count > maxCount {
		tb.Fatalf("ping: invalid count %d: must be between 1 and %d", count, maxCount)
	}
	family := "-4"
	if dst.Is6() && !dst.Is4In6() {
		family = "-6"
	}
	timeout := time.Duration(count)*pingInterval + 5*time.Second
	ctx, cancel := context.WithTimeout(tb.Context(), timeout)
	defer cancel()
	cmd := ns.Command(ctx, "ping", family, "-n", "-c", strconv.Itoa(count),
		"-i", strconv.FormatFloat(pingInterval.Seconds(), 'f', -1, 64), "-W", "2", dst.String())
	out, err := cmd.CombinedOutput()
	rtts := parsePingRTTs(out)
	if len(rtts) == 0 {
		tb.Fatalf("ping %s from netns %q: no replies (%v); is iputils-ping installed?\n%s", dst, ns.Name(), err, out)
	}
	if len(rtts) < count {
		tb.Logf("ping %s from netns %q: %d of %d replies", dst, ns.Name(), len(rtts), count)
	}
	return median(rtts)
}

var pingTimeRE = regexp.MustCompile(`time=([0-9.]+) ms`)

// parsePingRTTs returns the round-trip times of the reply lines of iputils
// ping output.
func parsePingRTTs(out []byte) []time.Duration {
	var rtts []time.Duration
	for _, m := range pingTimeRE.FindAllSubmatch(out, -1) {
		ms, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			continue
		}
		rtts = append(rtts, time.Duration(ms*float64(time.Millisecond)))
	}
	return rtts
}
