package main

import (
	"net"
	"strconv"
)

// checkBridgeAddr refuses a --http address of treaty mcp or treaty a2a that
// is not HOST:PORT with a numeric port in 0-65535 (a usage error, exit 2),
// and one off loopback unless allowRemote. net.Listen would take a service
// name ("http") as a port and serve where the user did not say.
func checkBridgeAddr(addr string, allowRemote bool) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("--http %s is not HOST:PORT (e.g. 127.0.0.1:7422)", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return usagef("--http %s: the port must be a number from 0 to 65535", addr)
	}
	if !allowRemote && !isLoopback(addr) {
		return usagef("--http %s is not a loopback address (use 127.0.0.1:PORT, or add --allow-non-loopback)", addr)
	}
	return nil
}
