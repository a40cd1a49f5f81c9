//go:build linux

package accuracy_test

import (
	"testing"
	"time"

	"github.com/go-metro/go-metro/internal/testbed"
)

// anyBridgeRow asserts the rows of the path whose client sits behind a
// bridge, captured on `any`, where each segment comes twice, once from the
// bridge and once from its port, and must count once. Before the engine
// counted each segment once, it took the second copy for a retransmission,
// and Karn's rule discarded the samples of flows without timestamps (1
// sample instead of 42 for request/response). With it false, the rows run
// and their misses are reported in the table (‡), not asserted; every
// sample is still paired with its frames.
const anyBridgeRow = true

// testAnyBridge runs bulk and request/response, with and without TCP
// timestamps, on a 10 ms path whose client's TAP device is the port of a
// bridge that holds the client's addresses, with the check capturing on
// `any`: every frame crosses two devices of the client's namespace, as on
// a host that talks through a bridge. The reference comes from the bridge.
func testAnyBridge(t *testing.T, rep *report) {
	im := testbed.Impairment{Delay: 10 * time.Millisecond}
	b := newBenchWith(t, testbed.DelayLineConfig{ClientToServer: im, ServerToClient: im}, bridgeName)
	sp := pathSpec{name: "10 ms each way, behind a bridge, on `any`", want: 20 * time.Millisecond, reportOnly: !anyBridgeRow}
	checkPing(t, b, sp)
	for _, pat := range []pattern{bulk, reqResp} {
		runPattern(t, rep, b, sp, pat, "")
	}
	b.setTimestamps(t, false)
	for _, pat := range []pattern{bulk, reqResp} {
		runPattern(t, rep, b, sp, pat, ", no timestamps")
	}
}
