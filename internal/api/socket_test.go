package api

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSocketNeverReachableByOthers: under umask 0, in a home others may
// search (0755, which a node accepts), the socket file is created 0777, but
// only inside a directory of mode 0700, and reaches treaty.sock already 0600:
// no other user can connect at any moment. Before, it was bound at
// treaty.sock itself and chmodded after, open to every local user between.
// Not parallel: the umask is the process's.
func TestSocketNeverReachableByOthers(t *testing.T) {
	home := t.TempDir()
	if err := os.Chmod(home, 0o755); err != nil {
		t.Fatal(err)
	}
	defer syscall.Umask(syscall.Umask(0))
	path := filepath.Join(home, SocketName)
	var sawBind bool
	ln, err := listenUnix(path, func(tmp string) {
		sawBind = true
		fi, err := os.Lstat(tmp)
		if err != nil || fi.Mode().Type() != os.ModeSocket {
			t.Fatalf("bound socket %s: %v, %v", tmp, fi, err)
		}
		if fi.Mode().Perm()&0o077 == 0 {
			t.Log("premise: the umask did not open the new socket to others")
		}
		d, err := os.Lstat(filepath.Dir(tmp))
		if err != nil || d.Mode().Perm() != 0o700 || filepath.Dir(filepath.Dir(tmp)) != home {
			t.Fatalf("socket bound in %s (%v, %v), want a 0700 directory in the home", filepath.Dir(tmp), d.Mode(), err)
		}
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Fatalf("%s exists before the socket is private: %v", path, err)
		}
		if len(tmp) != len(path) {
			t.Fatalf("temporary path %q is %d bytes, the socket's %d", tmp, len(tmp), len(path))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if !sawBind {
		t.Fatal("bound was not called")
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, %v; want a socket of mode 0600", path, fi.Mode(), err)
	}
	entries, _ := os.ReadDir(home)
	if len(entries) != 1 {
		t.Fatalf("home holds %d entries after Listen, want only %s", len(entries), SocketName)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial the renamed socket: %v", err)
	}
	c.Close()
}

// TestSocketLongestHome: a home whose treaty.sock path just fits the socket
// path limit (107 bytes and the NUL) still binds: the temporary path is no
// longer.
func TestSocketLongestHome(t *testing.T) {
	t.Parallel()
	const max = 107
	base := t.TempDir()
	pad := max - len(base) - len("/") - len("/"+SocketName)
	if pad < 1 {
		t.Skipf("temporary directory %s too long", base)
	}
	home := filepath.Join(base, strings.Repeat("h", pad))
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, SocketName)
	if len(path) != max {
		t.Fatalf("premise: path is %d bytes", len(path))
	}
	ln, err := listenUnix(path, nil)
	if err != nil {
		t.Fatalf("listen at a %d-byte path: %v", len(path), err)
	}
	ln.Close()
	if _, err := net.Listen("unix", path+"x"); err == nil {
		t.Fatal("premise: a 108-byte socket path was accepted")
	}
}
