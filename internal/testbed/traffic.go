package testbed

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// DefaultTrafficTimeout bounds a traffic generator whose context has no
// deadline.
const DefaultTrafficTimeout = 30 * time.Second

// Limits on the counts and sizes that the traffic generators accept.
const (
	maxBulkBytes = 1 << 30
	maxCount     = 100_000
	maxMsgSize   = 1 << 20
)

// Bulk sends n bytes from the client to the server over one TCP connection.
// The client then shuts down its sending side; the server, having read
// everything, answers with the byte count it received and closes.
func Bulk(ctx context.Context, p Path, n int64) error {
	return BulkPaced(ctx, p, BulkConfig{Bytes: n})
}

// BulkConfig configures [BulkPaced].
type BulkConfig struct {
	// Bytes is the number of bytes to send, between 1 and 1 GiB.
	Bytes int64
	// PacingRate caps the client's sending rate, in bytes per second, with
	// SO_MAX_PACING_RATE (Linux only). Zero leaves the sender unpaced.
	PacingRate uint64
}

// BulkPaced is [Bulk] with a configurable sender: with cfg.PacingRate, the
// kernel spaces the client's segments so that it never sends faster, which
// keeps a transfer from queueing in a slower forwarder on the path.
func BulkPaced(ctx context.Context, p Path, cfg BulkConfig) error {
	n := cfg.Bytes
	if n < 1 || n > maxBulkBytes {
		return fmt.Errorf("bulk: invalid byte count %d: must be between 1 and %d", n, maxBulkBytes)
	}
	err := run(ctx, p, 1, countBytes, func(ctx context.Context, dial dialFunc) error {
		c, err := dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		if cfg.PacingRate > 0 {
			if err := setMaxPacingRate(c.(*net.TCPConn), cfg.PacingRate); err != nil {
				return err
			}
		}
		if err := writeZeros(c, n); err != nil {
			return err
		}
		return closeAndCheckCount(c, n)
	})
	if err != nil {
		return fmt.Errorf("bulk %d bytes to %s: %w", n, p.Dst, err)
	}
	return nil
}

// RequestResponseConfig configures [RequestResponse] and [ShortConnections].
type RequestResponseConfig struct {
	// Count is the number of requests, and for ShortConnections the number of
	// connections. It must be between 1 and 100000.
	Count int
	// Gap is how long the client waits after each response before it sends
	// the next request, or opens the next connection.
	Gap time.Duration
	// RequestSize and ResponseSize are the sizes in bytes of each request and
	// response. Zero means 64 and 128.
	RequestSize, ResponseSize int
}

func (c *RequestResponseConfig) setDefaults() error {
	if c.RequestSize == 0 {
		c.RequestSize = 64
	}
	if c.ResponseSize == 0 {
		c.ResponseSize = 128
	}
	switch {
	case c.Count < 1 || c.Count > maxCount:
		return fmt.Errorf("invalid `Count` %d: must be between 1 and %d", c.Count, maxCount)
	case c.Gap < 0:
		return fmt.Errorf("invalid `Gap` %v: must not be negative", c.Gap)
	case c.RequestSize < 1 || c.RequestSize > maxMsgSize:
		return fmt.Errorf("invalid `RequestSize` %d: must be between 1 and %d", c.RequestSize, maxMsgSize)
	case c.ResponseSize < 1 || c.ResponseSize > maxMsgSize:
		return fmt.Errorf("invalid `ResponseSize` %d: must be between 1 and %d", c.ResponseSize, maxMsgSize)
	}
	return nil
}

// RequestResponse sends cfg.Count requests over one TCP connection, each
// answered by the server at once, with cfg.Gap between a response and the
// next request. The client closes the connection first.
func RequestResponse(ctx context.Context, p Path, cfg RequestResponseConfig) error {
	if err := cfg.setDefaults(); err != nil {
		return fmt.Errorf("request/response: %w", err)
	}
	err := run(ctx, p, 1, answer(cfg), func(ctx context.Context, dial dialFunc) error {
		c, err := dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		for i := range cfg.Count {
			if i > 0 {
				if err := sleepCtx(ctx, cfg.Gap); err != nil {
					return err
				}
			}
			if err := exchange(c, cfg); err != nil {
				return fmt.Errorf("request %d: %w", i+1, err)
			}
		}
		return closeAndWaitEOF(c)
	})
	if err != nil {
		return fmt.Errorf("request/response with %s: %w", p.Dst, err)
	}
	return nil
}

// ShortConnections opens cfg.Count TCP connections one after the other, with
// cfg.Gap between them. Each carries one request and its response, and is
// closed by the client.
func ShortConnections(ctx context.Context, p Path, cfg RequestResponseConfig) error {
	if err := cfg.setDefaults(); err != nil {
		return fmt.Errorf("short connections: %w", err)
	}
	err := run(ctx, p, cfg.Count, answer(cfg), func(ctx context.Context, dial dialFunc) error {
		for i := range cfg.Count {
			if i > 0 {
				if err := sleepCtx(ctx, cfg.Gap); err != nil {
					return err
				}
			}
			c, err := dial(ctx)
			if err != nil {
				return fmt.Errorf("connection %d: %w", i+1, err)
			}
			err = exchange(c, cfg)
			if err == nil {
				err = closeAndWaitEOF(c)
			}
			c.Close()
			if err != nil {
				return fmt.Errorf("connection %d: %w", i+1, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("short connections to %s: %w", p.Dst, err)
	}
	return nil
}

// SlowSenderConfig configures [SlowSender].
type SlowSenderConfig struct {
	// Count is the number of writes, between 1 and 100000.
	Count int
	// Size is the size in bytes of each write, below the MSS so that each
	// write is one segment. Zero means 100; at most 1000.
	Size int
	// Interval is the time between writes. Zero means 10 ms.
	Interval time.Duration
}

// SlowSender writes cfg.Count segments of cfg.Size bytes from the client to
// the server, one every cfg.Interval, with Nagle's algorithm off. The server
// acknowledges the total at the end, as for [Bulk].
func SlowSender(ctx context.Context, p Path, cfg SlowSenderConfig) error {
	if cfg.Size == 0 {
		cfg.Size = 100
	}
	if cfg.Interval == 0 {
		cfg.Interval = 10 * time.Millisecond
	}
	switch {
	case cfg.Count < 1 || cfg.Count > maxCount:
		return fmt.Errorf("slow sender: invalid `Count` %d: must be between 1 and %d", cfg.Count, maxCount)
	case cfg.Size < 1 || cfg.Size > 1000:
		return fmt.Errorf("slow sender: invalid `Size` %d: must be between 1 and 1000", cfg.Size)
	case cfg.Interval < 0:
		return fmt.Errorf("slow sender: invalid `Interval` %v: must not be negative", cfg.Interval)
	}
	err := run(ctx, p, 1, countBytes, func(ctx context.Context, dial dialFunc) error {
		c, err := dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		if tc, ok := c.(*net.TCPConn); ok {
			if err := tc.SetNoDelay(true); err != nil {
				return err
			}
		}
		buf := make([]byte, cfg.Size)
		for i := range cfg.Count {
			if i > 0 {
				if err := sleepCtx(ctx, cfg.Interval); err != nil {
					return err
				}
			}
			if _, err := c.Write(buf); err != nil {
				return fmt.Errorf("write %d: %w", i+1, err)
			}
		}
		return closeAndCheckCount(c, int64(cfg.Count*cfg.Size))
	})
	if err != nil {
		return fmt.Errorf("slow sender to %s: %w", p.Dst, err)
	}
	return nil
}

// UploadConfig configures [Upload].
type UploadConfig struct {
	// Exchanges is the number of request/response exchanges before the
	// upload, as a file-copy protocol's handshake makes (scp over SSH makes
	// about six). Between 0 and 100000.
	Exchanges int
	// ExchangeSize is the size in bytes of each request and response of
	// the exchanges. Zero means 512.
	ExchangeSize int
	// Bytes is the size of the upload, between 1 and 1 GiB.
	Bytes int64
}

// Upload copies a file the way scp does, over one TCP connection: the client
// and the server first make cfg.Exchanges exchanges, then the client sends
// cfg.Bytes bytes, shuts down its sending side, and reads the byte count the
// server answers with, as for [Bulk].
func Upload(ctx context.Context, p Path, cfg UploadConfig) error {
	if cfg.ExchangeSize == 0 {
		cfg.ExchangeSize = 512
	}
	switch {
	case cfg.Exchanges < 0 || cfg.Exchanges > maxCount:
		return fmt.Errorf("upload: invalid `Exchanges` %d: must be between 0 and %d", cfg.Exchanges, maxCount)
	case cfg.ExchangeSize < 1 || cfg.ExchangeSize > maxMsgSize:
		return fmt.Errorf("upload: invalid `ExchangeSize` %d: must be between 1 and %d", cfg.ExchangeSize, maxMsgSize)
	case cfg.Bytes < 1 || cfg.Bytes > maxBulkBytes:
		return fmt.Errorf("upload: invalid `Bytes` %d: must be between 1 and %d", cfg.Bytes, maxBulkBytes)
	}
	rr := RequestResponseConfig{RequestSize: cfg.ExchangeSize, ResponseSize: cfg.ExchangeSize}
	handle := func(c net.Conn) error {
		req, resp := make([]byte, rr.RequestSize), make([]byte, rr.ResponseSize)
		for i := range cfg.Exchanges {
			if _, err := io.ReadFull(c, req); err != nil {
				return fmt.Errorf("read request %d: %w", i+1, err)
			}
			if _, err := c.Write(resp); err != nil {
				return fmt.Errorf("write response %d: %w", i+1, err)
			}
		}
		return countBytes(c)
	}
	err := run(ctx, p, 1, handle, func(ctx context.Context, dial dialFunc) error {
		c, err := dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		for i := range cfg.Exchanges {
			if err := exchange(c, rr); err != nil {
				return fmt.Errorf("exchange %d: %w", i+1, err)
			}
		}
		if err := writeZeros(c, cfg.Bytes); err != nil {
			return err
		}
		return closeAndCheckCount(c, cfg.Bytes)
	})
	if err != nil {
		return fmt.Errorf("upload %d bytes to %s: %w", cfg.Bytes, p.Dst, err)
	}
	return nil
}

// dialFunc opens a connection from the client namespace to the server.
type dialFunc func(context.Context) (net.Conn, error)

// run starts a server in p.Server that accepts exactly conns connections and
// handles each with handle, runs client in p.Client, and waits for both. All
// connections get the deadline of ctx, or DefaultTrafficTimeout.
func run(ctx context.Context, p Path, conns int, handle func(net.Conn) error, client func(context.Context, dialFunc) error) error {
	return runListen(ctx, p, new(net.ListenConfig), conns, handle, client)
}

// runListen is run with a server that listens with lc.
func runListen(ctx context.Context, p Path, lc *net.ListenConfig, conns int, handle func(net.Conn) error, client func(context.Context, dialFunc) error) error {
	if p.Client == nil || p.Server == nil || !p.Dst.IsValid() {
		return errors.New("incomplete path: need Client, Server and Dst")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTrafficTimeout)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deadline, _ := ctx.Deadline()

	var ln net.Listener
	err := p.Server.Do(func() error {
		var err error
		ln, err = lc.Listen(ctx, "tcp", netip.AddrPortFrom(p.Dst, p.Port).String())
		return err
	})
	if err != nil {
		return fmt.Errorf("listen in netns %q: %w", p.Server.Name(), err)
	}
	addr := ln.Addr().String()
	// Closing the listener, and the connections through their deadline,
	// ends everything once ctx is done.
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()

	// The first error cancels everything else: the listener closes, and the
	// connections hit their deadline at once.
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	fail := func(err error) {
		once.Do(func() { firstErr = err })
		cancel()
	}
	watch := func(c net.Conn) {
		_ = c.SetDeadline(deadline)
		context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	}
	wg.Go(func() {
		for range conns {
			c, err := ln.Accept()
			if err != nil {
				fail(fmt.Errorf("server: accept: %w", err))
				return
			}
			watch(c)
			wg.Go(func() {
				defer c.Close()
				if err := handle(c); err != nil {
					fail(fmt.Errorf("server: %w", err))
				}
			})
		}
	})

	dialer := new(net.Dialer)
	if p.CongestionControl != "" {
		dialer.Control = congestionControlControl(p.CongestionControl)
	}
	dial := func(ctx context.Context) (net.Conn, error) {
		c, err := p.Client.dial(ctx, dialer, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("dial from netns %q: %w", p.Client.Name(), err)
		}
		watch(c)
		return c, nil
	}
	if err := client(ctx, dial); err != nil {
		fail(err)
	}
	wg.Wait()
	return firstErr
}

// countBytes reads until EOF, then writes the number of bytes read as 8
// bytes, big endian.
func countBytes(c net.Conn) error {
	return countBytesFrom(c, 0)
}

// countBytesFrom is countBytes for a connection of which read bytes were
// already read.
func countBytesFrom(c net.Conn, read int64) error {
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if _, err := c.Write(binary.BigEndian.AppendUint64(nil, uint64(read+n))); err != nil {
		return fmt.Errorf("write count: %w", err)
	}
	return nil
}

// writeZeros writes n zero bytes to c, 32 KiB at a time.
func writeZeros(c net.Conn, n int64) error {
	buf := make([]byte, 32<<10)
	for left := n; left > 0; {
		m, err := c.Write(buf[:min(left, int64(len(buf)))])
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		left -= int64(m)
	}
	return nil
}

// closeAndCheckCount shuts down the sending side of c and checks the count
// that countBytes answers.
func closeAndCheckCount(c net.Conn, want int64) error {
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return fmt.Errorf("shut down sending: %w", err)
	}
	var b [8]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return fmt.Errorf("read count: %w", err)
	}
	if got := int64(binary.BigEndian.Uint64(b[:])); got != want {
		return fmt.Errorf("server received %d bytes, want %d", got, want)
	}
	return nil
}

// answer returns a server handler that answers each request of
// cfg.RequestSize bytes with cfg.ResponseSize bytes, until EOF.
func answer(cfg RequestResponseConfig) func(net.Conn) error {
	return func(c net.Conn) error {
		req := make([]byte, cfg.RequestSize)
		resp := make([]byte, cfg.ResponseSize)
		for {
			if _, err := io.ReadFull(c, req); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return fmt.Errorf("read request: %w", err)
			}
			if _, err := c.Write(resp); err != nil {
				return fmt.Errorf("write response: %w", err)
			}
		}
	}
}

// exchange sends one request and reads its response.
func exchange(c net.Conn, cfg RequestResponseConfig) error {
	if _, err := c.Write(make([]byte, cfg.RequestSize)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if _, err := io.ReadFull(c, make([]byte, cfg.ResponseSize)); err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	return nil
}

// closeAndWaitEOF shuts down the sending side of c and waits for the server
// to close its side, so that the client sends the first FIN.
func closeAndWaitEOF(c net.Conn) error {
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return fmt.Errorf("shut down sending: %w", err)
	}
	if _, err := io.Copy(io.Discard, c); err != nil {
		return fmt.Errorf("wait for close: %w", err)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
