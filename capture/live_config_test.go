package capture_test

import (
	"strings"
	"testing"

	"github.com/go-metro/go-metro/capture"
)

// TestLiveConfigInterfaceName checks that names no Linux interface can
// have are configuration errors, and that real names are accepted.
func TestLiveConfigInterfaceName(t *testing.T) {
	for _, tt := range []struct {
		name string
		want string // "" for valid
	}{
		{"eth0", ""},
		{"any", ""},
		{"enp0s31f6", ""},
		{"veth-a.100", ""},
		{"abcdefghijklmno", ""}, // 15 bytes
		{"abcdefghijklmnop", `invalid ` + "`interface`" + ` "abcdefghijklmnop": 16 bytes, and a Linux interface name has at most 15`},
		{"eth0/1", `invalid ` + "`interface`" + ` "eth0/1": a Linux interface name has no '/', ':' or whitespace`},
		{"eth0:1", `invalid ` + "`interface`" + ` "eth0:1": a Linux interface name has no '/', ':' or whitespace`},
		{"eth 0", `invalid ` + "`interface`" + ` "eth 0": a Linux interface name has no '/', ':' or whitespace`},
		{"eth0\t", `invalid ` + "`interface`" + ` "eth0\t": a Linux interface name has no '/', ':' or whitespace`},
		{"..", `invalid ` + "`interface`" + ` "..": not an interface name`},
		{"", "invalid `interface` \"\": name an interface"},
	} {
		cfg := capture.LiveConfig{Interface: tt.name}
		err := cfg.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("interface %q: %v, want it accepted", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("interface %q: error %v, want %q", tt.name, err, tt.want)
		}
	}
}
