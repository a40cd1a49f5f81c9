// Package capture turns captured TCP packets into round-trip-time samples
// per remote peer.
//
// It holds the packet sources (pcap and pcapng files here, AF_PACKET on
// Linux), a zero-allocation decoder for the link, IP and TCP headers, a
// bounded flow table, three RTT estimators (TCP timestamps, sequence/ACK
// with Karn's rule, and the handshake) and the per-peer aggregation that a
// consumer drains. It knows nothing of the Datadog Agent and never logs: it
// returns errors and exposes counters.
//
// A packet's path: [Decoder.Decode] fills a [Packet]; [Engine.Process]
// finds its flow (flow.go), runs the estimators (rtt.go) and records the
// samples per peer (stats.go), which [Engine.Drain] hands to the consumer.
package capture
