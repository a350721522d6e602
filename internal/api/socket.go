package api

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
)

// listenUnix binds a unix socket at path that only its owner can ever reach.
// bind(2) creates the socket file with the umask's mode (0777 under umask
// 0), and changing the process's umask would race every other goroutine, so
// the socket is bound inside a fresh directory of mode 0700 beside path,
// chmodded to 0600 there, and only then renamed to path. Until the rename
// no other user can search the directory, so at no moment can one connect,
// whatever the umask and the mode of path's directory. The temporary path
// ("DIR/.XXXXXXXX/s") is exactly as long as "DIR/treaty.sock", so a home that
// fits the 108-byte limit of a socket path still fits. The rename replaces a
// stale socket at path. bound, when not nil, is called with the temporary
// path just after the bind (tests look at it).
func listenUnix(path string, bound func(tmp string)) (net.Listener, error) {
	var rnd [4]byte
	rand.Read(rnd[:])
	dir := filepath.Join(filepath.Dir(path), "."+hex.EncodeToString(rnd[:]))
	if err := os.Mkdir(dir, 0o700); err != nil { // fails if it exists: never someone else's
		return nil, err
	}
	defer os.RemoveAll(dir)
	// Mkdir's mode went through the umask (and a default ACL, if any); set it.
	// The directory is still empty: what anyone did in it before is moot.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, err
	}
	// The socket's name is about to change: the listener must not remove
	// whatever is at tmp when it closes. Server.Close removes path.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if bound != nil {
		bound(tmp)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
