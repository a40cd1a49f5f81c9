package capture_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/go-metro/go-metro/capture"
)

func TestInterfaceAddrsMissing(t *testing.T) {
	const name = "gm-no-such-if0"
	addrs, err := capture.InterfaceAddrs(name)
	if !errors.Is(err, capture.ErrNoInterface) {
		t.Fatalf("InterfaceAddrs(%q) = %v, %v; want an error wrapping ErrNoInterface", name, addrs, err)
	}
	for _, want := range []string{`"` + name + `"`, "retries until it appears"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestInterfaceAddrsAnyHasNoZones(t *testing.T) {
	addrs, err := capture.InterfaceAddrs("any")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if a.Zone() != "" || a.Is4In6() {
			t.Errorf("InterfaceAddrs(any) returned %v: want no zone and IPv4 in 4 bytes", a)
		}
	}
}

func TestWatchAddrsNotSupported(t *testing.T) {
	if runtime.GOOS == "linux" {
		t.Skip("WatchAddrs is supported on linux")
	}
	err := capture.WatchAddrs(t.Context(), func() {})
	if !errors.Is(err, capture.ErrNotSupported) {
		t.Errorf("WatchAddrs = %v, want an error wrapping ErrNotSupported", err)
	}
}
