//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// defaultRouteInterface returns the interface of the IPv4 default route, or
// of the IPv6 one when there is no IPv4 default route.
func defaultRouteInterface() (string, error) {
	tables := []struct {
		path  string
		parse func(io.Reader) (string, error)
	}{
		{"/proc/net/route", parseRoute4},
		{"/proc/net/ipv6_route", parseRoute6},
	}
	for _, t := range tables {
		iface, err := readRoutes(t.path, t.parse)
		if err != nil {
			return "", fmt.Errorf("find the default-route interface: %w; pass --interface", err)
		}
		if iface != "" {
			return iface, nil
		}
	}
	return "", errors.New("find the default-route interface: no default route in /proc/net/route or /proc/net/ipv6_route; pass --interface, or -c with a conf.yaml")
}

// readRoutes parses the routing table at path; a missing table (IPv6
// disabled) has no default route.
func readRoutes(path string, parse func(io.Reader) (string, error)) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	iface, err := parse(f)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return iface, nil
}
