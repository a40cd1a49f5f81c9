package testbed_test

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/go-metro/go-metro/internal/testbed"
)

func TestHealthTraffic(t *testing.T) {
	p := testbed.NewVethPair(t)
	path := p.Path4()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	t.Run("stalling-reader", func(t *testing.T) {
		const stall = 300 * time.Millisecond
		start := time.Now()
		err := testbed.StallingReader(ctx, path, testbed.StallingReaderConfig{Bytes: 256 << 10, Stalls: 2, Stall: stall})
		if err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el < 2*stall {
			t.Errorf("took %v, less than its two stalls", el)
		}
	})
	for _, byClient := range []bool{false, true} {
		name := map[bool]string{false: "reset-by-server", true: "reset-by-client"}[byClient]
		t.Run(name, func(t *testing.T) {
			// Each side checks that its read ends in ECONNRESET.
			if err := testbed.Resets(ctx, path, testbed.ResetsConfig{Count: 3, ByClient: byClient}); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		errs := testbed.Connects(ctx, p.Client, netip.AddrPortFrom(p.ServerAddr4, 9), 3, time.Second)
		for i, err := range errs {
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("connect %d: %v, want connection refused", i+1, err)
			}
		}
	})
	t.Run("upload", func(t *testing.T) {
		if err := testbed.Upload(ctx, path, testbed.UploadConfig{Exchanges: 4, Bytes: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	})
}
