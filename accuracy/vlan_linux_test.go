//go:build linux

package accuracy_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/go-metro/go-metro/internal/testbed"
)

// tagWatcher counts the frames that the client of a delay line receives,
// by the 802.1Q tag the kernel stripped into their metadata, which a packet
// socket reads with PACKET_AUXDATA.
type tagWatcher struct {
	fd   int
	stop atomic.Bool
	wg   sync.WaitGroup
	// tagged counts the received frames with a priority tag of VLAN ID 0
	// and priority testbed.PriorityTagPCP; other those without, or with
	// another tag.
	tagged, other atomic.Int64
}

// watchPriorityTags starts counting the frames the client of dl receives;
// check stops it.
func watchPriorityTags(tb testing.TB, dl *testbed.DelayLine) *tagWatcher {
	tb.Helper()
	w := &tagWatcher{fd: -1}
	err := dl.Client.Do(func() error {
		ifi, err := net.InterfaceByName(dl.ClientIf)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		w.fd = fd
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return fmt.Errorf("set PACKET_AUXDATA: %w", err)
		}
		tv := unix.NsecToTimeval(int64(100 * 1e6))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fmt.Errorf("set SO_RCVTIMEO: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("bind packet socket to %s: %w", dl.ClientIf, err)
		}
		return nil
	})
	if err != nil {
		if w.fd >= 0 {
			unix.Close(w.fd)
		}
		tb.Fatal(err)
	}
	w.wg.Go(w.loop)
	tb.Cleanup(w.close)
	return w
}

func (w *tagWatcher) loop() {
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.TpacketAuxdata{}))))
	for !w.stop.Load() {
		_, oobn, _, from, err := unix.Recvmsg(w.fd, buf, oob, 0)
		if err != nil {
			continue // timeout, or EINTR
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if tciOf(oob[:oobn]) == testbed.PriorityTagPCP<<13 {
			w.tagged.Add(1)
		} else {
			w.other.Add(1)
		}
	}
}

// tciOf returns the VLAN TCI of the auxiliary data of a frame, or -1 if it
// has none.
func tciOf(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return -1
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
			continue
		}
		aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
		if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
			return int(aux.Vlan_tci)
		}
	}
	return -1
}

func (w *tagWatcher) close() {
	if w.stop.Swap(true) {
		return
	}
	w.wg.Wait()
	unix.Close(w.fd)
}

// check stops w and checks that the client received frames, and all of them
// with the priority tag.
func (w *tagWatcher) check(tb testing.TB) {
	tb.Helper()
	w.close()
	tagged, other := w.tagged.Load(), w.other.Load()
	tb.Logf("the client received %d frames with the priority tag (VLAN ID 0, priority %d), %d without", tagged, testbed.PriorityTagPCP, other)
	if tagged == 0 || other > 0 {
		tb.Errorf("the client received %d frames with the priority tag and %d without: want all of them tagged", tagged, other)
	}
}

func htons(v uint16) uint16 { return binary.BigEndian.Uint16(binary.NativeEndian.AppendUint16(nil, v)) }
