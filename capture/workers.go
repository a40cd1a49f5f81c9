package capture

// add returns the sum of two Stats, the counters of two engines.
func (s Stats) add(o Stats) Stats {
	return Stats{
		Packets:          s.Packets + o.Packets,
		TCPPackets:       s.TCPPackets + o.TCPPackets,
		DecodeErrors:     s.DecodeErrors + o.DecodeErrors,
		Flows:            s.Flows + o.Flows,
		FlowsCreated:     s.FlowsCreated + o.FlowsCreated,
		FlowsExpired:     s.FlowsExpired + o.FlowsExpired,
		FlowsEvicted:     s.FlowsEvicted + o.FlowsEvicted,
		Samples:          s.Samples + o.Samples,
		SamplesDiscarded: s.SamplesDiscarded + o.SamplesDiscarded,
		Peers:            s.Peers + o.Peers,
		Copies:           s.Copies + o.Copies,
		ClockSteps:       s.ClockSteps + o.ClockSteps,
		PortsFolded:      s.PortsFolded + o.PortsFolded,
		CountsDropped:    s.CountsDropped + o.CountsDropped,
	}
}

// drainMerged drains several aggregators, the engines of a capture's
// workers, and returns one PeerStats per key, appended to dst: sketches
// merged, counts added, min and max combined, and the smoothed RTT of the
// interval with the newest sample. Their Buckets are valid until the next
// drainMerged of the first aggregator.
func drainMerged(aggs []*aggregator, dst []PeerStats) []PeerStats {
	first := aggs[0]
	first.drainMu.Lock()
	defer first.drainMu.Unlock()
	taken := make([][]keyedInterval, len(aggs))
	merged := first.ivBuf[:0]
	index := make(map[PeerKey]int)
	for i, a := range aggs {
		taken[i] = a.take(nil)
		for _, k := range taken[i] {
			if j, ok := index[k.key]; ok {
				merged[j].iv.merge(k.iv)
				continue
			}
			// A copy, so that every taken interval goes back to its own
			// aggregator unchanged but the one merged into.
			iv := newInterval()
			iv.merge(k.iv)
			index[k.key] = len(merged)
			merged = append(merged, keyedInterval{k.key, iv})
		}
	}
	first.bucketBuf, first.endBuf, dst = summarize(merged, first.bucketBuf[:0], first.endBuf[:0], dst)
	for i, a := range aggs {
		a.recycle(taken[i])
	}
	clear(merged)
	first.ivBuf = merged[:0]
	return dst
}
