package home

import (
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/treaty-dev/treaty/internal/config"
)

// ResolveCommand makes an exec backend's command independent of the directory
// and PATH of whoever runs the node: its program is resolved now, relative to
// the working directory or through PATH, to an absolute path, and a program
// that does not exist, is not executable or is writable by anyone is refused
// (wrapping ErrInvalid). A group-writable one passes: with a private group
// per user (umask 002) that is the common case.
func ResolveCommand(command string) (string, error) {
	argv, err := config.SplitCommand(command)
	if err != nil {
		return "", invalidf("--exec %q: %v", command, err)
	}
	prog := argv[0]
	if !strings.Contains(prog, "/") {
		p, err := exec.LookPath(prog)
		if err != nil {
			return "", invalidf("--exec: command %q not found in PATH", prog)
		}
		prog = p
	}
	abs, err := filepath.Abs(prog)
	if err != nil {
		return "", invalidf("--exec: %v", err)
	}
	fi, err := os.Stat(abs)
	switch {
	case err != nil:
		return "", invalidf("--exec: command %s does not exist", abs)
	case fi.IsDir():
		return "", invalidf("--exec: %s is a directory, not a command", abs)
	case fi.Mode().Perm()&0o111 == 0:
		return "", invalidf("--exec: %s is not executable (chmod +x it)", abs)
	case fi.Mode().Perm()&0o002 != 0:
		return "", invalidf("--exec: %s is writable by anyone (mode %04o): they could change what runs with every peer's input (chmod o-w it)", abs, fi.Mode().Perm())
	}
	argv[0] = abs
	return config.JoinCommand(argv), nil
}

// CheckHTTPBackend refuses a backend URL that is not http(s), and one whose
// host is not loopback unless allowRemote: a capability's input would
// otherwise leave the machine to a host the operator may not have meant.
func CheckHTTPBackend(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalidf("--http %q: want an http:// or https:// URL", raw)
	}
	if allowRemote || isLoopback(u.Hostname()) {
		return nil
	}
	return invalidf("--http %q: %s is not a loopback address; pass --allow-remote to send capability inputs to another host", raw, u.Hostname())
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
