// Package testbed builds throwaway Linux network namespaces joined by a path
// of known round-trip time, so that tests and tools can drive real TCP traffic
// across it and check what go-metro measures.
//
// Two topologies exist. [NewVethPair] joins two namespaces with a veth pair: a
// near-zero-delay path. [NewDelayLine] joins them through two TAP devices and a
// forwarder in the test process that holds every Ethernet frame for a
// configured one-way delay, with optional jitter and random loss. The kernel
// of the CI machines has no netem qdisc, hence the userspace forwarder; its
// writers sleep with clock_nanosleep on locked OS threads, so that frames are
// released about 0.1 ms after their due time rather than the several
// milliseconds that Go timers can add. A delay line can also drop every
// SYN to one port (Impairment.DropSYNToPort), so that connects to it time
// out, and queue the client's frames behind it in a rate-limited
// [Bottleneck] in the server namespace (tbf on an ifb device, as the kernel
// has no netem), so that a capture on the client side sees the round-trip
// time grow while the queue fills.
//
// Helpers that take a [testing.TB] skip the test without privileges (see
// [RequireRoot]) and register cleanups that remove every namespace they
// created, even when the test fails. An interrupt (SIGINT, SIGTERM) removes
// the namespaces of the running process, and namespaces left behind by a
// process that was killed are removed by the next one. Programs that have no
// testing.TB use the error-returning forms, [CreateNetNS] and
// [OpenDelayLine], and close what they open.
//
// Traffic generators ([Bulk], [RequestResponse], [ShortConnections],
// [SlowSender], [Upload], [StallingReader], [Resets]) run a server in one
// namespace and a client in the other, and are bounded in count and time;
// [Connects] makes connects that a test expects to be refused or to time
// out.
//
// Timing tests compare go-metro with a reference from the same frames:
// [TrackRetransmissions] opens a packet socket of its own on the captured
// device, which sees every frame with the kernel timestamp that go-metro
// reads, and [RetransTracker.Reference] computes from those frames the RTT
// samples that each method's rules give ([ReferenceSamples], [RefMethod]).
// [RefSamples.Compare] pairs go-metro's samples with the reference's of the
// same ACK, [RefSamples.Envelope] bounds every statistic of them, and
// [MedianRange] bounds the median of an interval whose ends are known
// within some slack. [StartTcpdump], [TsharkAckRTT] and [ReadPcap] record a
// device to a pcap file, read Wireshark's ack_rtt of it, and feed a file to
// the reference; [Pair.BridgeClient] puts the client behind a bridge.
//
// Everything here needs Linux, root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) and
// iproute2 (ip, and tc for a Bottleneck); [Ping] also needs iputils ping. On other systems the functions
// return an error that wraps [ErrNotSupported].
package testbed
