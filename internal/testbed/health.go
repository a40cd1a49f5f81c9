package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// This file holds the traffic that fails or stalls: a receiver that stops
// reading, connections reset by either side, and connects that are refused
// or time out.

// StallingReaderConfig configures [StallingReader].
type StallingReaderConfig struct {
	// Bytes is the number of bytes the client sends, between 1 and 1 GiB.
	Bytes int64
	// ReceiveBuffer is the server's SO_RCVBUF, in bytes, set before it
	// listens: the smaller, the sooner its window closes. Zero means 16 KiB.
	ReceiveBuffer int
	// ReadBetween is how many bytes the server reads before its first
	// stall and between stalls. Zero means 64 KiB.
	ReadBetween int64
	// Stalls is the number of times the server stops reading, between 1 and
	// 100. Zero means 1.
	Stalls int
	// Stall is how long each stall lasts. Zero means 1 s.
	Stall time.Duration
}

// StallingReader sends cfg.Bytes bytes from the client to a server that
// stops reading cfg.Stalls times, each time for cfg.Stall: its receive
// buffer fills, it advertises a zero window, the client probes it, and the
// window opens again when the server reads on. The server acknowledges the
// total at the end, as for [Bulk] (Linux only, for SO_RCVBUF).
func StallingReader(ctx context.Context, p Path, cfg StallingReaderConfig) error {
	if cfg.ReceiveBuffer == 0 {
		cfg.ReceiveBuffer = 16 << 10
	}
	if cfg.ReadBetween == 0 {
		cfg.ReadBetween = 64 << 10
	}
	if cfg.Stalls == 0 {
		cfg.Stalls = 1
	}
	if cfg.Stall == 0 {
		cfg.Stall = time.Second
	}
	switch {
	case cfg.Bytes < 1 || cfg.Bytes > maxBulkBytes:
		return fmt.Errorf("stalling reader: invalid `Bytes` %d: must be between 1 and %d", cfg.Bytes, maxBulkBytes)
	case cfg.ReceiveBuffer < 1 || cfg.ReceiveBuffer > maxMsgSize:
		return fmt.Errorf("stalling reader: invalid `ReceiveBuffer` %d: must be between 1 and %d", cfg.ReceiveBuffer, maxMsgSize)
	case cfg.ReadBetween < 1:
		return fmt.Errorf("stalling reader: invalid `ReadBetween` %d: must be positive", cfg.ReadBetween)
	case cfg.Stalls < 1 || cfg.Stalls > 100:
		return fmt.Errorf("stalling reader: invalid `Stalls` %d: must be between 1 and 100", cfg.Stalls)
	case cfg.Stall < 0:
		return fmt.Errorf("stalling reader: invalid `Stall` %v: must not be negative", cfg.Stall)
	}
	lc := &net.ListenConfig{Control: receiveBufferControl(cfg.ReceiveBuffer)}
	handle := func(c net.Conn) error {
		var total int64
		for i := range cfg.Stalls {
			n, err := io.CopyN(io.Discard, c, cfg.ReadBetween)
			total += n
			if err != nil {
				return fmt.Errorf("read before stall %d: %w", i+1, err)
			}
			time.Sleep(cfg.Stall)
		}
		return countBytesFrom(c, total)
	}
	err := runListen(ctx, p, lc, 1, handle, func(ctx context.Context, dial dialFunc) error {
		c, err := dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := writeZeros(c, cfg.Bytes); err != nil {
			return err
		}
		return closeAndCheckCount(c, cfg.Bytes)
	})
	if err != nil {
		return fmt.Errorf("stalling reader at %s: %w", p.Dst, err)
	}
	return nil
}

// ResetsConfig configures [Resets].
type ResetsConfig struct {
	// Count is the number of connections, one after the other, between 1
	// and 100000.
	Count int
	// Gap is the time between connections.
	Gap time.Duration
	// ByClient makes the client reset each connection, after the server's
	// response; otherwise the server resets it, after the client's request
	// and without answering.
	ByClient bool
}

// Resets opens cfg.Count connections that end in a reset: on each, the
// client sends a request of 64 bytes; the server either resets the
// connection at once, or answers 128 bytes that the client reads and then
// resets the connection (cfg.ByClient). A side resets by closing its socket
// with SO_LINGER 0, so that its kernel sends RST instead of FIN.
func Resets(ctx context.Context, p Path, cfg ResetsConfig) error {
	rr := RequestResponseConfig{Count: cfg.Count, Gap: cfg.Gap}
	if err := rr.setDefaults(); err != nil {
		return fmt.Errorf("resets: %w", err)
	}
	handle := func(c net.Conn) error {
		if _, err := io.ReadFull(c, make([]byte, rr.RequestSize)); err != nil {
			return fmt.Errorf("read request: %w", err)
		}
		if !cfg.ByClient {
			return abort(c)
		}
		if _, err := c.Write(make([]byte, rr.ResponseSize)); err != nil {
			return fmt.Errorf("write response: %w", err)
		}
		// The client resets: the read ends in ECONNRESET.
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			return fmt.Errorf("read after response: %v, want connection reset", err)
		}
		return nil
	}
	err := run(ctx, p, cfg.Count, handle, func(ctx context.Context, dial dialFunc) error {
		for i := range cfg.Count {
			if i > 0 {
				if err := sleepCtx(ctx, cfg.Gap); err != nil {
					return err
				}
			}
			if err := resetOne(ctx, dial, rr, cfg.ByClient); err != nil {
				return fmt.Errorf("connection %d: %w", i+1, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("resets with %s: %w", p.Dst, err)
	}
	return nil
}

// resetOne makes one connection of Resets.
func resetOne(ctx context.Context, dial dialFunc, rr RequestResponseConfig, byClient bool) error {
	c, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write(make([]byte, rr.RequestSize)); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	resp := make([]byte, rr.ResponseSize)
	if byClient {
		if _, err := io.ReadFull(c, resp); err != nil {
			return fmt.Errorf("read response: %w", err)
		}
		return abort(c)
	}
	if _, err := c.Read(resp); !errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("read response: %v, want connection reset", err)
	}
	return nil
}

// abort closes c with SO_LINGER 0: the kernel sends RST.
func abort(c net.Conn) error {
	if err := c.(*net.TCPConn).SetLinger(0); err != nil {
		return fmt.Errorf("set SO_LINGER 0: %w", err)
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// Connects makes count connects from ns to dst at once, each bounded by
// timeout, and returns their errors in order: nil for a connect that
// succeeded (its connection is closed at once). To a port nobody listens on,
// each fails with ECONNREFUSED; through a [DelayLine] that drops the SYNs to
// the port (Impairment.DropSYNToPort), each times out, having sent its SYN
// again after 1 s, then every second for net.ipv4.tcp_syn_linear_timeouts
// (4, Linux 6.6 and later) more times, then after twice as long each time:
// 7 SYNs in 11 s, at 0, 1, 2, 3, 4, 5 and 7 s.
func Connects(ctx context.Context, ns *NetNS, dst netip.AddrPort, count int, timeout time.Duration) []error {
	errs := make([]error, count)
	var wg sync.WaitGroup
	for i := range count {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			c, err := ns.Dial(ctx, "tcp", dst.String())
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = c.Close()
		})
	}
	wg.Wait()
	return errs
}
