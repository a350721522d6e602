package config

import (
	"fmt"
	"net"
)

// Metrics configures the node's Prometheus endpoint. It is read at start.
type Metrics struct {
	// Listen is the host:port of the plain-HTTP /metrics endpoint; empty
	// (the default) serves none. It must be a loopback address unless
	// AllowNonLoopback: the metrics name peers and capabilities.
	Listen           string `yaml:"listen,omitempty"`
	AllowNonLoopback bool   `yaml:"allow_non_loopback,omitempty"`
}

func (m Metrics) validate() error {
	if m.Listen == "" {
		return nil
	}
	if err := validAddr(m.Listen); err != nil {
		return fmt.Errorf("config: metrics.listen: %w", err)
	}
	if m.AllowNonLoopback {
		return nil
	}
	host, _, _ := net.SplitHostPort(m.Listen)
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("config: metrics.listen %q is not a loopback address; set metrics.allow_non_loopback: true to serve other machines", m.Listen)
	}
	return nil
}
