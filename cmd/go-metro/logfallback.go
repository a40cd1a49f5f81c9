package main

import "fmt"

// write writes p to the log file, or to standard error when there is no
// log file or writing it fails (a full disk), so that no line is lost. It
// says so on standard error when the file first fails, and when it can be
// written again. o.mu is held.
func (o *logOutput) write(p []byte) (int, error) {
	if o.file == nil || o.w != o.file {
		return o.w.Write(p)
	}
	if _, err := o.file.Write(p); err != nil {
		if o.failed != o.file {
			o.failed = o.file
			fmt.Fprintf(o.stderr, "go-metro: cannot write the log file %s: %v; logging to standard error until it can be written again\n", o.file.Name(), err)
		}
		return o.stderr.Write(p)
	}
	if o.failed == o.file {
		o.failed = nil
		fmt.Fprintf(o.stderr, "go-metro: the log file %s can be written again; logging there\n", o.file.Name())
	}
	return len(p), nil
}
