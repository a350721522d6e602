package main

import "testing"

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:8765": true, "[::1]:8765": true, "localhost:1": true, "127.1.2.3:0": true,
		"0.0.0.0:8765": false, "[::]:1": false, "10.0.0.1:80": false, "example.com:80": false,
		"127.0.0.1": false, "": false, "localhost.evil.com:1": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
