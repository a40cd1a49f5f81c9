package capture_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/go-metro/go-metro/capture"
)

var _ capture.Resolver = (*net.Resolver)(nil)

// fakeAnswer is what fakeResolver returns for a host: addresses or an error.
type fakeAnswer struct {
	addrs []string
	err   error
}

// errBlock makes fakeResolver wait until the lookup's context is done.
var errBlock = errors.New("block until the context is done")

// fakeResolver answers from a table that tests change between lookups. It
// fails the test when asked about a host that is not in the table.
type fakeResolver struct {
	t        testing.TB
	delay    time.Duration
	mu       sync.Mutex
	answers  map[string]fakeAnswer
	lookups  []string
	inFlight atomic.Int32
	maxIn    atomic.Int32
}

func newFakeResolver(t testing.TB) *fakeResolver {
	return &fakeResolver{t: t, answers: map[string]fakeAnswer{}}
}

func (f *fakeResolver) set(answers map[string]fakeAnswer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for h, a := range answers {
		f.answers[h] = a
	}
}

func (f *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxIn.Load()
		if n <= m || f.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	if network != "ip" {
		f.t.Errorf("LookupNetIP(%q, %q): want network \"ip\"", network, host)
	}
	f.mu.Lock()
	a, ok := f.answers[host]
	f.lookups = append(f.lookups, host)
	f.mu.Unlock()
	if !ok {
		f.t.Errorf("unexpected lookup of %q", host)
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if a.err == errBlock {
		<-ctx.Done()
		return nil, &net.DNSError{Err: "i/o timeout", Name: host, Server: "192.0.2.53:53", IsTimeout: true, UnwrapErr: ctx.Err()}
	}
	if a.err != nil {
		return nil, a.err
	}
	var out []netip.Addr
	for _, s := range a.addrs {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

func nxdomain(host string) error {
	return &net.DNSError{Err: "no such host", Name: host, Server: "192.0.2.53:53", IsNotFound: true}
}

func servfail(host string) error {
	return &net.DNSError{Err: "server misbehaving", Name: host, Server: "192.0.2.53:53", IsTemporary: true}
}

func prefixStrings(ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func errStrings(errs []error) []string {
	var out []string
	for _, err := range errs {
		out = append(out, err.Error())
	}
	return out
}

// resolveRound is one call to Resolve: the resolver's answers before it, and what
// the peers must be after it.
type resolveRound struct {
	answers        map[string]fakeAnswer
	wantPrefixes   []string
	wantWarnings   []string
	wantUnresolved []string
	wantTags       map[string]string // address -> Tag
	wantContains   map[string]bool   // address -> Contains
}

func TestPeerResolverResolve(t *testing.T) {
	tests := []struct {
		name    string
		spec    capture.PeerSpec
		timeout time.Duration
		rounds  []resolveRound
	}{
		{
			name: "ips only, deduplicated and sorted",
			spec: capture.PeerSpec{IPs: []string{
				"2001:db8::/32", "192.0.2.7", "10.1.2.3/8", " 192.0.2.7 ", "::ffff:198.51.100.1", "fe80::1%eth0",
			}},
			rounds: []resolveRound{{
				wantPrefixes: []string{"10.0.0.0/8", "192.0.2.7/32", "198.51.100.1/32", "2001:db8::/32", "fe80::1/128"},
				wantTags: map[string]string{
					"192.0.2.7":  "192.0.2.7",
					"10.9.9.9":   "10.9.9.9",
					"fe80::1":    "fe80::1",
					"2001:db8::": "2001:db8::",
				},
				wantContains: map[string]bool{
					"192.0.2.7": true, "192.0.2.8": false, "10.9.9.9": true, "11.0.0.1": false,
					"198.51.100.1": true, "fe80::1": true, "2001:db8:1::1": true, "2001:db9::1": false,
				},
			}},
		},
		{
			name: "failure then success",
			spec: capture.PeerSpec{Hosts: []string{"db.example"}},
			rounds: []resolveRound{
				{
					answers:        map[string]fakeAnswer{"db.example": {err: nxdomain("db.example")}},
					wantWarnings:   []string{`resolve host "db.example": no such host: it has no address yet, so its traffic is not captured`},
					wantUnresolved: []string{"db.example"},
					wantContains:   map[string]bool{"192.0.2.7": false},
				},
				{
					answers:      map[string]fakeAnswer{"db.example": {addrs: []string{"192.0.2.7"}}},
					wantPrefixes: []string{"192.0.2.7/32"},
					wantTags:     map[string]string{"192.0.2.7": "db.example"},
					wantContains: map[string]bool{"192.0.2.7": true},
				},
			},
		},
		{
			name: "success then failure keeps the last addresses",
			spec: capture.PeerSpec{Hosts: []string{"db.example"}},
			rounds: []resolveRound{
				{
					answers:      map[string]fakeAnswer{"db.example": {addrs: []string{"2001:db8::7", "192.0.2.7", "192.0.2.7"}}},
					wantPrefixes: []string{"192.0.2.7/32", "2001:db8::7/128"},
					wantTags:     map[string]string{"192.0.2.7": "db.example", "2001:db8::7": "db.example"},
				},
				{
					answers:      map[string]fakeAnswer{"db.example": {err: servfail("db.example")}},
					wantPrefixes: []string{"192.0.2.7/32", "2001:db8::7/128"},
					wantWarnings: []string{`resolve host "db.example": server misbehaving: keeping its last addresses (192.0.2.7, 2001:db8::7)`},
					wantTags:     map[string]string{"192.0.2.7": "db.example"},
				},
				{
					answers:      map[string]fakeAnswer{"db.example": {addrs: []string{"192.0.2.8"}}},
					wantPrefixes: []string{"192.0.2.8/32"},
					wantTags:     map[string]string{"192.0.2.7": "192.0.2.7", "192.0.2.8": "db.example"},
					wantContains: map[string]bool{"192.0.2.7": false, "192.0.2.8": true},
				},
			},
		},
		{
			name: "an answer without addresses is a failure",
			spec: capture.PeerSpec{Hosts: []string{"empty.example"}},
			rounds: []resolveRound{{
				answers:        map[string]fakeAnswer{"empty.example": {}},
				wantWarnings:   []string{`resolve host "empty.example": no address found: it has no address yet, so its traffic is not captured`},
				wantUnresolved: []string{"empty.example"},
			}},
		},
		{
			name:    "a lookup that times out",
			spec:    capture.PeerSpec{Hosts: []string{"slow.example", "db.example"}},
			timeout: 50 * time.Millisecond,
			rounds: []resolveRound{{
				answers: map[string]fakeAnswer{
					"slow.example": {err: errBlock},
					"db.example":   {addrs: []string{"192.0.2.7"}},
				},
				wantPrefixes:   []string{"192.0.2.7/32"},
				wantWarnings:   []string{`resolve host "slow.example": no answer within 50ms: it has no address yet, so its traffic is not captured`},
				wantUnresolved: []string{"slow.example"},
			}},
		},
		{
			name: "IP literals in hosts are not looked up",
			spec: capture.PeerSpec{Hosts: []string{"192.0.2.9", "2001:DB8::9", "::ffff:192.0.2.10"}},
			rounds: []resolveRound{{
				wantPrefixes: []string{"192.0.2.9/32", "192.0.2.10/32", "2001:db8::9/128"},
				wantTags:     map[string]string{"192.0.2.9": "192.0.2.9", "2001:db8::9": "2001:db8::9", "192.0.2.10": "192.0.2.10"},
			}},
		},
		{
			name: "IPv4-mapped answers are unmapped",
			spec: capture.PeerSpec{Hosts: []string{"db.example"}},
			rounds: []resolveRound{{
				answers:      map[string]fakeAnswer{"db.example": {addrs: []string{"::ffff:192.0.2.7"}}},
				wantPrefixes: []string{"192.0.2.7/32"},
				wantTags:     map[string]string{"192.0.2.7": "db.example"},
			}},
		},
		{
			// The first configured host wins the tag of an address that
			// several hosts resolve to, and a host name wins over `ips`.
			name: "duplicate addresses across hosts and ips",
			spec: capture.PeerSpec{
				IPs:   []string{"192.0.2.7", "192.0.2.0/24"},
				Hosts: []string{"a.example", "b.example", "A.example"},
			},
			rounds: []resolveRound{{
				answers: map[string]fakeAnswer{
					"a.example": {addrs: []string{"192.0.2.7"}},
					"b.example": {addrs: []string{"192.0.2.8", "192.0.2.7"}},
				},
				wantPrefixes: []string{"192.0.2.0/24", "192.0.2.7/32", "192.0.2.8/32"},
				wantTags: map[string]string{
					"192.0.2.7":    "a.example",
					"192.0.2.8":    "b.example",
					"192.0.2.9":    "192.0.2.9",
					"198.51.100.1": "198.51.100.1",
				},
				wantContains: map[string]bool{"192.0.2.9": true, "198.51.100.1": false},
			}},
		},
		{
			name: "one host fails, the others resolve",
			spec: capture.PeerSpec{Hosts: []string{"a.example", "gone.example", "b.example"}},
			rounds: []resolveRound{{
				answers: map[string]fakeAnswer{
					"a.example":    {addrs: []string{"192.0.2.1"}},
					"gone.example": {err: nxdomain("gone.example")},
					"b.example":    {addrs: []string{"2001:db8::2"}},
				},
				wantPrefixes:   []string{"192.0.2.1/32", "2001:db8::2/128"},
				wantWarnings:   []string{`resolve host "gone.example": no such host: it has no address yet, so its traffic is not captured`},
				wantUnresolved: []string{"gone.example"},
				wantTags:       map[string]string{"192.0.2.1": "a.example", "2001:db8::2": "b.example"},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeResolver(t)
			pr, err := capture.NewPeerResolver(tt.spec, fake)
			if err != nil {
				t.Fatalf("NewPeerResolver: %v", err)
			}
			pr.Timeout = tt.timeout
			for i, r := range tt.rounds {
				fake.set(r.answers)
				peers, warnings := pr.Resolve(t.Context())
				if !peers.Restricts() {
					t.Errorf("resolveRound %d: Restricts() = false, want true", i)
				}
				if diff := cmp.Diff(r.wantPrefixes, prefixStrings(peers.Prefixes())); diff != "" {
					t.Errorf("resolveRound %d: Prefixes() (-want +got):\n%s", i, diff)
				}
				if diff := cmp.Diff(r.wantWarnings, errStrings(warnings)); diff != "" {
					t.Errorf("resolveRound %d: warnings (-want +got):\n%s", i, diff)
				}
				if diff := cmp.Diff(r.wantUnresolved, peers.Unresolved()); diff != "" {
					t.Errorf("resolveRound %d: Unresolved() (-want +got):\n%s", i, diff)
				}
				for a, want := range r.wantTags {
					if got := peers.Tag(netip.MustParseAddr(a)); got != want {
						t.Errorf("resolveRound %d: Tag(%s) = %q, want %q", i, a, got, want)
					}
				}
				for a, want := range r.wantContains {
					if got := peers.Contains(netip.MustParseAddr(a)); got != want {
						t.Errorf("resolveRound %d: Contains(%s) = %v, want %v", i, a, got, want)
					}
				}
				for _, w := range warnings {
					var re *capture.ResolveError
					if !errors.As(w, &re) || re.Err == nil {
						t.Errorf("resolveRound %d: warning %v is not a *ResolveError with a cause", i, w)
					}
				}
			}
			for _, h := range fake.lookups {
				if _, err := netip.ParseAddr(h); err == nil {
					t.Errorf("looked up IP literal %q", h)
				}
			}
		})
	}
}

func TestResolveErrorUnwraps(t *testing.T) {
	fake := newFakeResolver(t)
	fake.set(map[string]fakeAnswer{
		"slow.example": {err: errBlock},
		"gone.example": {err: nxdomain("gone.example")},
	})
	pr, err := capture.NewPeerResolver(capture.PeerSpec{Hosts: []string{"slow.example", "gone.example"}}, fake)
	if err != nil {
		t.Fatal(err)
	}
	pr.Timeout = 20 * time.Millisecond
	_, warnings := pr.Resolve(t.Context())
	if len(warnings) != 2 {
		t.Fatalf("got %d warnings, want 2: %v", len(warnings), warnings)
	}
	if !errors.Is(warnings[0], context.DeadlineExceeded) {
		t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false, want true", warnings[0])
	}
	var de *net.DNSError
	if !errors.As(warnings[1], &de) || !de.IsNotFound {
		t.Errorf("warning %v does not unwrap to a not-found *net.DNSError", warnings[1])
	}
	var re *capture.ResolveError
	if !errors.As(warnings[1], &re) || re.Host != "gone.example" || len(re.Kept) != 0 {
		t.Errorf("warning %v: got %+v, want a *ResolveError for gone.example without addresses", warnings[1], re)
	}
}

func TestPeerResolverStatic(t *testing.T) {
	fake := newFakeResolver(t)
	pr, err := capture.NewPeerResolver(capture.PeerSpec{
		IPs:   []string{"198.51.100.0/24"},
		Hosts: []string{"192.0.2.9", "db.example"},
	}, fake)
	if err != nil {
		t.Fatal(err)
	}
	if !pr.HasHosts() {
		t.Error("HasHosts() = false, want true")
	}
	static := pr.Static()
	if diff := cmp.Diff([]string{"192.0.2.9/32", "198.51.100.0/24"}, prefixStrings(static.Prefixes())); diff != "" {
		t.Errorf("Static().Prefixes() before Resolve (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"db.example"}, static.Unresolved()); diff != "" {
		t.Errorf("Static().Unresolved() before Resolve (-want +got):\n%s", diff)
	}
	if len(fake.lookups) != 0 {
		t.Errorf("Static looked up %v", fake.lookups)
	}
	fake.set(map[string]fakeAnswer{"db.example": {addrs: []string{"192.0.2.7"}}})
	pr.Resolve(t.Context())
	// The snapshot taken before is immutable; a new one has the address.
	if static.Contains(netip.MustParseAddr("192.0.2.7")) {
		t.Error("an earlier snapshot changed after Resolve")
	}
	if got := pr.Static().Tag(netip.MustParseAddr("192.0.2.7")); got != "db.example" {
		t.Errorf("Static().Tag(192.0.2.7) after Resolve = %q, want db.example", got)
	}

	literals, err := capture.NewPeerResolver(capture.PeerSpec{IPs: []string{"192.0.2.1"}, Hosts: []string{"192.0.2.9"}}, fake)
	if err != nil {
		t.Fatal(err)
	}
	if literals.HasHosts() {
		t.Error("HasHosts() with only IP literals = true, want false")
	}
}

func TestPeerResolverMaxLookups(t *testing.T) {
	fake := newFakeResolver(t)
	fake.delay = 5 * time.Millisecond
	var hosts []string
	answers := map[string]fakeAnswer{}
	for i := range 20 {
		h := fmt.Sprintf("h%d.example", i)
		hosts = append(hosts, h)
		answers[h] = fakeAnswer{addrs: []string{fmt.Sprintf("192.0.2.%d", i+1)}}
	}
	fake.set(answers)
	pr, err := capture.NewPeerResolver(capture.PeerSpec{Hosts: hosts}, fake)
	if err != nil {
		t.Fatal(err)
	}
	pr.MaxLookups = 3
	peers, warnings := pr.Resolve(t.Context())
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
	if got := len(peers.Prefixes()); got != 20 {
		t.Errorf("got %d prefixes, want 20", got)
	}
	if got := fake.maxIn.Load(); got > 3 || got < 2 {
		t.Errorf("at most %d lookups ran at once, want 2 or 3 (MaxLookups 3)", got)
	}
}

func TestPeersConcurrentUse(t *testing.T) {
	fake := newFakeResolver(t)
	fake.set(map[string]fakeAnswer{"a.example": {addrs: []string{"192.0.2.1"}}, "b.example": {addrs: []string{"192.0.2.2"}}})
	pr, err := capture.NewPeerResolver(capture.PeerSpec{Hosts: []string{"a.example", "b.example"}, IPs: []string{"10.0.0.0/8"}}, fake)
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("192.0.2.1")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				pr.Resolve(t.Context())
			}
		})
		wg.Go(func() {
			for range 200 {
				p := pr.Static()
				p.Contains(a)
				p.Tag(a)
				p.Prefixes()
				p.Unresolved()
			}
		})
	}
	wg.Wait()
}

func TestPeersNil(t *testing.T) {
	var p *capture.Peers
	a := netip.MustParseAddr("192.0.2.1")
	if p.Restricts() || p.Contains(a) || len(p.Prefixes()) != 0 || len(p.Unresolved()) != 0 {
		t.Error("a nil *Peers is not empty")
	}
	if got := p.Tag(a); got != "192.0.2.1" {
		t.Errorf("Tag = %q, want 192.0.2.1", got)
	}
	if err := p.CheckNotAllLocal(capture.NewLocalSet([]netip.Addr{a}, nil)); err != nil {
		t.Errorf("CheckNotAllLocal: %v", err)
	}
	var zero capture.PeerResolver
	peers, warnings := zero.Resolve(t.Context())
	if peers.Restricts() || len(warnings) != 0 || zero.HasHosts() {
		t.Errorf("the zero PeerResolver has peers: %v %v", peers.Prefixes(), warnings)
	}
	empty, err := capture.NewPeerResolver(capture.PeerSpec{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if empty.Static().Restricts() {
		t.Error("an empty PeerSpec restricts capture")
	}
}

func TestNewPeerResolverInvalid(t *testing.T) {
	tests := []struct {
		name string
		spec capture.PeerSpec
		want []string // one line per invalid entry
	}{
		{
			name: "bad address",
			spec: capture.PeerSpec{IPs: []string{"192.0.2.1", "10.0.0.300"}},
			want: []string{"invalid `ips` entry: parse \"10.0.0.300\": not an IP address such as 192.0.2.1 or 2001:db8::1"},
		},
		{
			name: "bad prefix",
			spec: capture.PeerSpec{IPs: []string{"10.0.0.0/33"}},
			want: []string{"invalid `ips` entry: parse \"10.0.0.0/33\": not a CIDR prefix such as 192.0.2.0/24 or 2001:db8::/32"},
		},
		{
			name: "host name in ips",
			spec: capture.PeerSpec{IPs: []string{"db.example"}},
			want: []string{"invalid `ips` entry: parse \"db.example\": not an IP address such as 192.0.2.1 or 2001:db8::1; host names belong in `hosts`"},
		},
		{
			name: "empty host",
			spec: capture.PeerSpec{Hosts: []string{" "}},
			want: []string{"invalid `hosts` entry \" \": must be a host name such as db.example or an IP address"},
		},
		{
			name: "prefix in hosts",
			spec: capture.PeerSpec{Hosts: []string{"192.0.2.0/24"}},
			want: []string{"invalid `hosts` entry \"192.0.2.0/24\": a CIDR prefix belongs in `ips`"},
		},
		{
			name: "empty label",
			spec: capture.PeerSpec{Hosts: []string{"bad..name"}},
			want: []string{"invalid `hosts` entry \"bad..name\": an empty label (two dots in a row, or a dot first): must be a DNS name such as db.example: labels of 1 to 63 letters, digits, '-' and '_', separated by dots"},
		},
		{
			name: "space in a host name",
			spec: capture.PeerSpec{Hosts: []string{"a b"}},
			want: []string{"invalid `hosts` entry \"a b\": a host name has no spaces"},
		},
		{
			name: "host and port",
			spec: capture.PeerSpec{Hosts: []string{"localhost:80"}},
			want: []string{"invalid `hosts` entry \"localhost:80\": a host name has no port or scheme: list the name alone, such as db.example"},
		},
		{
			name: "URL",
			spec: capture.PeerSpec{Hosts: []string{"https://db.example"}},
			want: []string{"invalid `hosts` entry \"https://db.example\": a host name has no port or scheme: list the name alone, such as db.example"},
		},
		{
			name: "wildcard",
			spec: capture.PeerSpec{Hosts: []string{"*.example.com"}},
			want: []string{"invalid `hosts` entry \"*.example.com\": wildcards are not supported: list each host name"},
		},
		{
			name: "leading hyphen",
			spec: capture.PeerSpec{Hosts: []string{"-db.example"}},
			want: []string{"invalid `hosts` entry \"-db.example\": label \"-db\" starts or ends with '-': must be a DNS name such as db.example: labels of 1 to 63 letters, digits, '-' and '_', separated by dots"},
		},
		{
			name: "other character",
			spec: capture.PeerSpec{Hosts: []string{"db!.example"}},
			want: []string{"invalid `hosts` entry \"db!.example\": character '!': must be a DNS name such as db.example: labels of 1 to 63 letters, digits, '-' and '_', separated by dots"},
		},
		{
			name: "label too long",
			spec: capture.PeerSpec{Hosts: []string{strings.Repeat("a", 64) + ".example"}},
			want: []string{"invalid `hosts` entry \"" + strings.Repeat("a", 64) + ".example\": label \"" + strings.Repeat("a", 64) + "\" has 64 bytes, more than 63: must be a DNS name such as db.example: labels of 1 to 63 letters, digits, '-' and '_', separated by dots"},
		},
		{
			name: "every invalid entry is named",
			spec: capture.PeerSpec{IPs: []string{"x", "192.0.2.1", "1.2.3"}, Hosts: []string{"ok.example", ""}},
			want: []string{
				"invalid `ips` entry: parse \"x\": not an IP address such as 192.0.2.1 or 2001:db8::1; host names belong in `hosts`",
				"invalid `ips` entry: parse \"1.2.3\": not an IP address such as 192.0.2.1 or 2001:db8::1",
				"invalid `hosts` entry \"\": must be a host name such as db.example or an IP address",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr, err := capture.NewPeerResolver(tt.spec, newFakeResolver(t))
			if err == nil {
				t.Fatalf("NewPeerResolver(%+v) = %v, want an error", tt.spec, pr)
			}
			if diff := cmp.Diff(tt.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckNotAllLocal(t *testing.T) {
	local, err := capture.ParseLocalSet("127.0.0.1", "::1", "192.0.2.1", "10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	const fix = ": go-metro times traffic to remote peers; list remote addresses or leave both empty"
	tests := []struct {
		name    string
		spec    capture.PeerSpec
		answers map[string]fakeAnswer
		local   *capture.LocalSet
		want    string // "" for no error
	}{
		{name: "no peers", spec: capture.PeerSpec{}},
		{
			name: "local ips",
			spec: capture.PeerSpec{IPs: []string{"127.0.0.1", "::1/128"}},
			want: "the peers in `ips` and `hosts` are all local addresses of this host (127.0.0.1; ::1)" + fix,
		},
		{
			name: "local ips and hosts",
			spec: capture.PeerSpec{IPs: []string{"192.0.2.1"}, Hosts: []string{"localhost", "::1", "10.1.1.1"}},
			answers: map[string]fakeAnswer{
				"localhost": {addrs: []string{"::1", "127.0.0.1"}},
			},
			want: "the peers in `ips` and `hosts` are all local addresses of this host (192.0.2.1; localhost: 127.0.0.1, ::1; ::1; 10.1.1.1)" + fix,
		},
		{
			name: "one remote address",
			spec: capture.PeerSpec{IPs: []string{"127.0.0.1", "198.51.100.1"}},
		},
		{
			name:    "a host with a remote address",
			spec:    capture.PeerSpec{IPs: []string{"127.0.0.1"}, Hosts: []string{"db.example"}},
			answers: map[string]fakeAnswer{"db.example": {addrs: []string{"127.0.0.1", "198.51.100.1"}}},
		},
		{
			// A prefix is not one address of the host, even inside a local
			// prefix or containing local addresses.
			name: "a prefix is never local",
			spec: capture.PeerSpec{IPs: []string{"127.0.0.1", "10.1.0.0/16"}},
		},
		{
			name:    "an unresolved host may be remote",
			spec:    capture.PeerSpec{IPs: []string{"127.0.0.1"}, Hosts: []string{"db.example"}},
			answers: map[string]fakeAnswer{"db.example": {err: nxdomain("db.example")}},
		},
		{
			name:  "empty local set",
			spec:  capture.PeerSpec{IPs: []string{"127.0.0.1"}},
			local: capture.NewLocalSet(nil, nil),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeResolver(t)
			fake.set(tt.answers)
			pr, err := capture.NewPeerResolver(tt.spec, fake)
			if err != nil {
				t.Fatal(err)
			}
			peers, _ := pr.Resolve(t.Context())
			ls := local
			if tt.local != nil {
				ls = tt.local
			}
			got := ""
			if err := peers.CheckNotAllLocal(ls); err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("CheckNotAllLocal (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNewPeerResolverHostNames checks host names that are valid DNS names
// are accepted, a final dot, underscores, digits and spaces around them
// included, and so are IP addresses.
func TestNewPeerResolverHostNames(t *testing.T) {
	for _, h := range []string{"db.example", "DB.Example.", "_sip._tcp.example", "a-b.c-d.example", "123.example", " db.example ", "localhost",
		strings.Repeat("a", 63) + ".example", "2001:db8::1"} {
		if _, err := capture.NewPeerResolver(capture.PeerSpec{Hosts: []string{h}}, newFakeResolver(t)); err != nil {
			t.Errorf("hosts entry %q: %v", h, err)
		}
	}
}
