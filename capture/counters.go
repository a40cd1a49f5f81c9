package capture

// kernelCounter turns a socket's 32-bit running count of packets or drops
// into a 64-bit count that never goes backwards, neither when the 32-bit
// count wraps nor when the socket is closed and a new one opened. gopacket
// adds up the kernel's PACKET_STATISTICS (which the kernel resets on each
// read) in a uint32, which wraps after 4.3 billion packets: about two
// hours at 500,000 packets a second. The zero value counts from 0.
type kernelCounter struct {
	total uint64 // over every socket so far
	last  uint32 // the open socket's last running count
}

// observe takes the open socket's running count and returns the total.
// Between two calls the socket must count fewer than 2^32 packets.
func (c *kernelCounter) observe(running uint32) uint64 {
	c.total += uint64(running - c.last) // modulo 2^32: right across a wrap
	c.last = running
	return c.total
}

// reopen tells the counter that a new socket, counting from 0, replaced
// the previous one, whose last count stays in the total.
func (c *kernelCounter) reopen() { c.last = 0 }
