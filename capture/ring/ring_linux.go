//go:build linux

package ring

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Ring is an AF_PACKET socket with a TPACKET_V3 receive ring mapped into
// the process. One goroutine reads it (NextBlock, the Block it returns,
// ReadBlock, Close); Shutdown, ReadStats, SetFilter, Ifindex and
// FanoutGroup are safe for concurrent use.
type Ring struct {
	mem       []byte // the ring, NumBlocks blocks of blockSize bytes; nil once closed
	blockSize int
	numBlocks int
	cur       int  // index of the block that NextBlock looks at
	held      bool // the reader holds block cur
	block     Block
	frame     Frame // ReadBlock's, so that it does not escape per call
	pfd       [2]unix.PollFd
	ifindex   int
	group     uint16
	shutdown  atomic.Bool // Shutdown or Close was called

	mu  sync.Mutex // guards fd and efd, which Close sets to -1
	fd  int        // the packet socket
	efd int        // an eventfd that Shutdown writes to wake the reader
}

// pageSize is the system's page size, which ring blocks are multiples of.
var pageSize = unix.Getpagesize()

// rejectAll is the filter a fanout socket binds with.
var rejectAll = []bpf.RawInstruction{{Op: 0x06, K: 0}} // BPF_RET | BPF_K: return 0

// Open opens a packet socket on the interface cfg names, in the network
// namespace of the calling thread, with a TPACKET_V3 ring and cfg.Filter,
// and returns it ready to read. Promiscuous mode is left off, and
// outgoing frames are captured too (Frame.PktType tells them apart).
//
// The errors wrap ErrPermission without CAP_NET_RAW, ErrNoInterface if the
// interface does not exist, ErrInterfaceDown if it is down, and the
// system's error (unix.ENOMEM for a ring the kernel cannot allocate, for
// example).
func Open(cfg Config) (*Ring, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(pageSize); err != nil {
		return nil, fmt.Errorf("open packet ring: %w", err)
	}
	r, err := open(cfg)
	if err != nil {
		return nil, fmt.Errorf("open packet ring on %q: %w", cfg.Interface, err)
	}
	return r, nil
}

// open does the work of Open. As libpcap does, it creates the socket with
// protocol 0, so that it receives nothing until bind names ETH_P_ALL.
// libpcap then binds before it attaches the filter, and filters in
// userspace the blocks filled in between; here the filter is attached
// before bind, so that the ring never holds an unfiltered frame.
func open(cfg Config) (_ *Ring, err error) {
	typ := unix.SOCK_RAW
	if cfg.Dgram {
		typ = unix.SOCK_DGRAM
	}
	// Protocol 0: no frame reaches the socket before bind.
	fd, err := unix.Socket(unix.AF_PACKET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("%w: %w", ErrPermission, err)
		}
		return nil, fmt.Errorf("create packet socket: %w", err)
	}
	r := &Ring{fd: fd, efd: -1, blockSize: cfg.BlockSize, numBlocks: cfg.NumBlocks}
	r.block.r = r
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if cfg.Interface != Any {
		if r.ifindex, err = ifindex(fd, cfg.Interface); err != nil {
			return nil, err
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("set TPACKET_V3: %w", err)
	}
	req := unix.TpacketReq3{
		Block_size:     uint32(cfg.BlockSize),
		Block_nr:       uint32(cfg.NumBlocks),
		Frame_size:     uint32(cfg.FrameSize),
		Frame_nr:       uint32(cfg.BlockSize/cfg.FrameSize) * uint32(cfg.NumBlocks),
		Retire_blk_tov: cfg.blockTimeoutMillis(),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("allocate a ring of %d blocks of %d bytes: %w", cfg.NumBlocks, cfg.BlockSize, err)
	}
	if r.mem, err = unix.Mmap(fd, 0, cfg.BlockSize*cfg.NumBlocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("map the ring of %d bytes: %w", cfg.BlockSize*cfg.NumBlocks, err)
	}
	first := cfg.Filter
	if cfg.Fanout != NoFanout {
		// Until the socket has joined the group, it would receive every
		// frame of the interface, including those the group gives to
		// other sockets.
		first = rejectAll
	}
	if err := setFilter(fd, first); err != nil {
		return nil, err
	}
	sa := unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: r.ifindex}
	if err := unix.Bind(fd, &sa); err != nil {
		if errors.Is(err, unix.ENETDOWN) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) {
			return nil, fmt.Errorf("bind: %w: %w", ErrInterfaceDown, err)
		}
		return nil, fmt.Errorf("bind: %w", err)
	}
	// Binding to an interface that is down succeeds but sets the
	// socket's error.
	if serr := sockError(fd); serr != nil {
		return nil, serr
	}
	if cfg.Fanout != NoFanout {
		if err := r.joinFanout(cfg.Fanout, cfg.FanoutGroup); err != nil {
			return nil, err
		}
		if err := setFilter(fd, cfg.Filter); err != nil {
			return nil, err
		}
	}
	if r.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("create eventfd: %w", err)
	}
	r.pfd = [2]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(r.efd), Events: unix.POLLIN}}
	return r, nil
}

// ifindex returns the index of the interface name, asking through fd.
func ifindex(fd int, name string) (int, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoInterface, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return 0, fmt.Errorf("%w: %w", ErrNoInterface, err)
		}
		return 0, fmt.Errorf("find interface index: %w", err)
	}
	return int(ifr.Uint32()), nil
}

// fanoutArg is the PACKET_FANOUT argument for a hash group: the group ID in
// the low 16 bits, the type and flags above.
func fanoutArg(group uint16, flags int) int {
	return int(group) | (unix.PACKET_FANOUT_HASH|unix.PACKET_FANOUT_FLAG_DEFRAG|flags)<<16
}

// joinFanout joins the hash fanout group, or creates one with a unique ID
// (which the kernel takes from 0 up), and records the group's ID.
func (r *Ring) joinFanout(mode FanoutMode, group uint16) error {
	flags := 0
	if mode == FanoutNew {
		group, flags = 0, unix.PACKET_FANOUT_FLAG_UNIQUEID
	}
	if err := unix.SetsockoptInt(r.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, fanoutArg(group, flags)); err != nil {
		if mode == FanoutNew {
			return fmt.Errorf("create a fanout group: %w", err)
		}
		return fmt.Errorf("join fanout group %d: %w (a group of that ID exists with other settings or on another interface)", group, err)
	}
	v, err := unix.GetsockoptInt(r.fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
	if err != nil {
		return fmt.Errorf("read the fanout group: %w", err)
	}
	r.group = uint16(v)
	return nil
}

// setFilter attaches prog to fd, replacing its filter, or detaches the
// filter if prog is empty.
func setFilter(fd int, prog []bpf.RawInstruction) error {
	if len(prog) == 0 {
		err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
		if err != nil && !errors.Is(err, unix.ENOENT) { // ENOENT: there was none
			return fmt.Errorf("detach filter: %w", err)
		}
		return nil
	}
	if len(prog) > 0xffff {
		return fmt.Errorf("attach filter of %d instructions: %w: %w", len(prog), ErrFilter, unix.EINVAL)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return fmt.Errorf("attach filter of %d instructions: %w: %w", len(prog), ErrFilter, err)
	}
	return nil
}

// sockError reads and clears the socket's pending error (SO_ERROR), and
// returns it wrapped, or nil if there is none.
func sockError(fd int) error {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return fmt.Errorf("read the socket's error: %w", err)
	}
	switch errno := unix.Errno(v); errno {
	case 0:
		return nil
	case unix.ENETDOWN, unix.ENODEV, unix.ENXIO:
		return fmt.Errorf("%w: %w", ErrInterfaceDown, errno)
	default:
		return fmt.Errorf("the socket reported an error: %w", errno)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// SetFilter replaces the socket's filter with prog, or removes it if prog
// is empty; see Config.Filter. The kernel swaps filters atomically: each
// frame meets either the old filter or the new one. Frames already in the
// ring stay. Safe for concurrent use.
func (r *Ring) SetFilter(prog []bpf.RawInstruction) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd < 0 {
		return ErrClosed
	}
	return setFilter(r.fd, prog)
}

// Ifindex returns the index of the interface the socket is bound to, or 0
// for Any.
func (r *Ring) Ifindex() int { return r.ifindex }

// FanoutGroup returns the ID of the fanout group the socket joined or
// created, or 0 with NoFanout. Safe for concurrent use.
func (r *Ring) FanoutGroup() uint16 { return r.group }

// status returns the status word of block i.
func (r *Ring) status(i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[i*r.blockSize+offBlockStatus]))
}

// NextBlock releases the block the reader holds, if any, then waits up to
// timeout for the kernel to hand over the next block and returns it. A
// timeout of 0 does not wait; a negative one waits until a block is ready
// or Shutdown or Close is called. NextBlock returns the same *Block every
// time: the block's frames are valid until it is released.
//
// Blocks come in the order the kernel filled them, and blocks that are
// ready are returned before any error of the socket: when the interface
// goes down, every frame captured before is read first.
//
// The errors are ErrTimeout (unwrapped) if no block was ready in time,
// ErrClosed (unwrapped) after Shutdown or Close, an error wrapping
// ErrInterfaceDown if the interface went down or was removed, and
// others from poll. NextBlock does not allocate, except for errors other
// than ErrTimeout and ErrClosed.
func (r *Ring) NextBlock(timeout time.Duration) (*Block, error) {
	if r.held {
		r.release()
	}
	if r.shutdown.Load() {
		return nil, ErrClosed
	}
	st := r.status(r.cur)
	if atomic.LoadUint32(st)&tpStatusUser == 0 {
		if err := r.wait(st, timeout); err != nil {
			return nil, err
		}
	}
	r.block.reset(r.mem[r.cur*r.blockSize : (r.cur+1)*r.blockSize])
	r.held = true
	return &r.block, nil
}

// wait polls until the block whose status is st is ready, Shutdown is
// called, the socket reports an error, or timeout runs out.
func (r *Ring) wait(st *uint32, timeout time.Duration) error {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		ms := -1 // forever
		if timeout >= 0 {
			ms = 0
			if left := time.Until(deadline); left > 0 {
				ms = int((left + time.Millisecond - 1) / time.Millisecond)
			}
		}
		r.pfd[0].Revents, r.pfd[1].Revents = 0, 0
		_, err := unix.Poll(r.pfd[:], ms)
		if err != nil && err != unix.EINTR {
			return fmt.Errorf("poll packet socket: %w", err)
		}
		switch {
		case r.shutdown.Load():
			return ErrClosed
		case atomic.LoadUint32(st)&tpStatusUser != 0:
			return nil
		case r.pfd[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0:
			if err := sockError(r.fd); err != nil {
				return fmt.Errorf("read packet ring: %w", err)
			}
			return fmt.Errorf("read packet ring: poll reported %#x without a socket error", r.pfd[0].Revents)
		case ms == 0:
			return ErrTimeout
		case ms > 0 && !time.Now().Before(deadline):
			return ErrTimeout
		}
		// Interrupted, or woken before the block was handed over: wait
		// for what is left.
	}
}

// release gives block cur back to the kernel and moves to the next one.
func (r *Ring) release() {
	if !r.held || r.mem == nil {
		return
	}
	r.held = false
	r.block.buf, r.block.left = nil, 0
	atomic.StoreUint32(r.status(r.cur), tpStatusKernel)
	r.cur++
	if r.cur == r.numBlocks {
		r.cur = 0
	}
}

// ReadBlock waits up to timeout for the next block, as NextBlock does,
// calls fn with each of its frames in order, releases it, and returns the
// number of frames. The frame passed to fn, and its Data, are valid only
// until fn returns. The error is NextBlock's, or ErrMalformedBlock if the
// walk ended early. ReadBlock does not allocate if fn does not.
func (r *Ring) ReadBlock(timeout time.Duration, fn func(f *Frame)) (int, error) {
	b, err := r.NextBlock(timeout)
	if err != nil {
		return 0, err
	}
	n := 0
	for b.Next(&r.frame) {
		fn(&r.frame)
		n++
	}
	r.frame = Frame{}
	err = b.Err()
	b.Release()
	return n, err
}

// ReadStats reads the kernel's counters, which the read resets, and adds
// them into c; see Counters. Safe for concurrent use, but two concurrent
// calls each add a part.
func (r *Ring) ReadStats(c *Counters) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd < 0 {
		return ErrClosed
	}
	var st unix.TpacketStatsV3
	n := uint32(unix.SizeofTpacketStatsV3)
	// unix.GetsockoptTpacketStatsV3 allocates its result.
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(r.fd), unix.SOL_PACKET, unix.PACKET_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return fmt.Errorf("read the kernel's packet counters: %w", e)
	}
	c.add(st.Packets, st.Drops, st.Freeze_q_cnt)
	return nil
}

// Shutdown makes NextBlock return ErrClosed from now on: at once if it
// waits in another goroutine. It does not release the socket: the reader
// must still call Close. Safe for concurrent use with every method, and
// to call more than once.
func (r *Ring) Shutdown() {
	if r.shutdown.Swap(true) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.efd >= 0 {
		var one [8]byte // an eventfd adds the host-order uint64 written
		ne.PutUint64(one[:], 1)
		_, _ = unix.Write(r.efd, one[:])
	}
}

// Close shuts the ring down, unmaps it and closes the socket. The frames of
// a block the reader holds become invalid: call Close from the reading
// goroutine, or once it no longer reads; another goroutine stops a
// blocked reader with Shutdown. Frames still in the ring are lost; read
// the counters before Close to keep the last ones. Later calls do nothing
// and return nil.
func (r *Ring) Close() error {
	r.shutdown.Store(true)
	r.held = false
	var errs []error
	if r.mem != nil {
		if err := unix.Munmap(r.mem); err != nil {
			errs = append(errs, fmt.Errorf("unmap packet ring: %w", err))
		}
		r.mem = nil
	}
	r.block.buf, r.block.left = nil, 0
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, fd := range []*int{&r.fd, &r.efd} {
		if *fd >= 0 {
			if err := unix.Close(*fd); err != nil {
				errs = append(errs, fmt.Errorf("close packet ring: %w", err))
			}
			*fd = -1
		}
	}
	return errors.Join(errs...)
}
