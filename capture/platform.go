package capture

import "errors"

// ErrNotSupported is wrapped by the errors of functions that cannot work on
// the running operating system, such as live capture and [WatchAddrs]
// outside Linux. Test for it with errors.Is.
var ErrNotSupported = errors.New("not supported")
