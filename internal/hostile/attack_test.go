//go:build linux

package hostile

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/testnet"
	"github.com/treaty-dev/treaty/internal/transport"
	"github.com/treaty-dev/treaty/internal/wire"
)

// Attack sizes. Loops are bounded by these counts and by the attack's deadline.
const (
	strangerConns   = 512  // silent connections held open at once (finding 1)
	strangerSources = 64   // distinct source addresses 127.0.1.1 .. 127.0.1.64
	strangerDialHz  = 200  // at most this many new stranger connections per second after the first burst
	strangerMaxDial = 6000 // and at most this many in all
	slowHelloEvery  = 4    // every 4th stranger sends a ClientHello one byte at a time
	unknownKeyHz    = 10   // full handshakes with unknown keys per second
	peerConnsMax    = 3000 // connections a granted peer tries to hold (finding 2)
	peerConnsHz     = 15   // at most this many new ones per second
	// peerFDHeadroom: during finding 2 the victim's RLIMIT_NOFILE is lowered
	// to the descriptors it uses plus this, so that a peer without a cap
	// exhausts it within the attack (at peerConnsHz), and one with a cap of a
	// few connections per key leaves the rest to the legitimate peer.
	peerFDHeadroom = 32
	grantedSources = 8 // the granted peer's source addresses, 127.0.2.1 ..
	floodMax       = 40000
	floodWorkers   = 8
	floodHz        = 2000 // requests per second at most (finding 3: 47,560 in 20 s)
)

// source returns the i-th stranger source address (127.0.1.x, never the
// legitimate peer's 127.0.0.1).
func source(i int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i%strangerSources))}
}

// tokens yields burst tokens at once, then hz per second, until ctx ends.
func tokens(ctx context.Context, burst, hz int) <-chan struct{} {
	ch := make(chan struct{}, burst)
	for range burst {
		ch <- struct{}{}
	}
	go func() {
		tick := time.NewTicker(time.Second / time.Duration(hz))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
	return ch
}

// strangers holds strangerConns silent (or slowly-hello'ing) TCP connections
// to addr from many source addresses, reopening each as soon as the victim
// drops it, and meanwhile runs handshakes with unknown keys.
func strangers(ctx context.Context, addr string) string {
	var dials, refusedDial, serverClosed, unknownDone, unknownAccepted atomic.Int64
	tok := tokens(ctx, strangerConns, strangerDialHz)
	var wg sync.WaitGroup
	for slot := range strangerConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: source(slot), Timeout: time.Second}
			for ctx.Err() == nil {
				select {
				case <-ctx.Done():
					return
				case <-tok:
				}
				if dials.Add(1) > strangerMaxDial {
					return
				}
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					refusedDial.Add(1)
					continue
				}
				stop := context.AfterFunc(ctx, func() { c.Close() })
				if slot%slowHelloEvery == 0 {
					slowHello(ctx, c)
				} else {
					c.Read(make([]byte, 1)) // silent until the victim or the attack ends it
				}
				stop()
				c.Close()
				if ctx.Err() == nil {
					serverClosed.Add(1)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second / unknownKeyHz)
		defer tick.Stop()
		for i := 0; i < unknownKeyHz*10; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if unknownHandshake(ctx, addr, i) {
				unknownAccepted.Add(1)
			}
			unknownDone.Add(1)
		}
	}()
	wg.Wait()
	return fmt.Sprintf("%d stranger dials (%d failed to connect, %d dropped by the victim), %d unknown-key handshakes (%d accepted)",
		min(dials.Load(), strangerMaxDial), refusedDial.Load(), serverClosed.Load(), unknownDone.Load(), unknownAccepted.Load())
}

// newAddressHandshakes measures, without asserting, what the legitimate
// peer's key gets from addresses the victim has never seen (127.0.3.x): the
// victim reserves part of its pending handshakes for known sources, so a
// legitimate peer on a new address competes with the strangers for the rest.
func newAddressHandshakes(ctx context.Context, s *scene) string {
	cert, err := selfCert(s.lKey)
	if err != nil {
		return err.Error()
	}
	ok, n := 0, 0
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for i := range 50 {
		select {
		case <-ctx.Done():
			return fmt.Sprintf("legitimate key from new addresses: %d of %d handshakes accepted (not asserted)", ok, n)
		case <-tick.C:
		}
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 3, byte(1+i))}, Timeout: time.Second}
		n++
		if c, err := admittedHandshake(ctx, d, s.v.Addr, cert); err == nil {
			ok++
			c.Close()
		}
	}
	return fmt.Sprintf("legitimate key from new addresses: %d of %d handshakes accepted (not asserted)", ok, n)
}

// slowHello sends a TLS record header announcing a ClientHello, then one byte
// every 200 ms, until the victim closes the connection or ctx ends.
func slowHello(ctx context.Context, c net.Conn) {
	if _, err := c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}); err != nil {
		return
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for range 100 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := c.Write([]byte{0x00}); err != nil {
			return
		}
	}
}

// unknownHandshake runs a full TLS 1.3 handshake with a key the victim does not
// admit, and reports whether the victim accepted it (it must not).
func unknownHandshake(ctx context.Context, addr string, i int) bool {
	key, err := identity.Generate(nil)
	if err != nil {
		return false
	}
	d := net.Dialer{LocalAddr: source(i), Timeout: time.Second}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	raw, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(time.Second))
	cert, err := selfCert(key)
	if err != nil {
		return false
	}
	tc := tls.Client(raw, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true,
		MinVersion: tls.VersionTLS13, NextProtos: []string{transport.ProtoFederation}})
	if err := tc.HandshakeContext(dctx); err != nil {
		return false
	}
	// TLS 1.3: the verdict on our certificate arrives with the first read.
	var b [1]byte
	_, err = io.ReadFull(tc, b[:])
	return err == nil
}

// grantedConns has a granted peer open up to peerConnsMax mTLS connections,
// from its own addresses (127.0.2.x), and hold them all until ctx ends
// (finding 2).
func grantedConns(ctx context.Context, s *scene) string {
	cert, err := selfCert(s.mallory)
	if err != nil {
		return err.Error()
	}
	var (
		mu       sync.Mutex
		held     []net.Conn
		attempts atomic.Int64
		failed   atomic.Int64
		wg       sync.WaitGroup
	)
	tok := tokens(ctx, grantedSources, peerConnsHz)
	for w := range grantedSources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 2, byte(1+w))}, Timeout: time.Second}
			for ctx.Err() == nil && attempts.Add(1) <= peerConnsMax {
				select {
				case <-ctx.Done():
					continue
				case <-tok:
				}
				c, err := admittedHandshake(ctx, d, s.v.Addr, cert)
				if err != nil {
					failed.Add(1)
					continue
				}
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	<-ctx.Done()
	mu.Lock()
	defer mu.Unlock()
	open := 0
	for _, c := range held {
		if stillOpen(c) {
			open++
		}
		c.Close()
	}
	return fmt.Sprintf("granted peer: %d connection attempts, %d accepted, %d refused or failed; %d still open at the end",
		min(attempts.Load(), peerConnsMax), len(held), failed.Load(), open)
}

// stillOpen reports whether the victim has left c open: reading what it sent
// (HTTP/2 settings) ends in a timeout, not in EOF or a reset.
func stillOpen(c net.Conn) bool {
	buf := make([]byte, 4096)
	for range 16 {
		c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			return errors.Is(err, os.ErrDeadlineExceeded)
		}
	}
	return true
}

// admittedHandshake runs a full handshake with an admitted key and waits for
// the victim's acceptance byte, as transport.Dial does, but from d's address.
func admittedHandshake(ctx context.Context, d net.Dialer, addr string, cert tls.Certificate) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	raw, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Now().Add(time.Second))
	tc := tls.Client(raw, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true,
		MinVersion: tls.VersionTLS13, NextProtos: []string{transport.ProtoFederation}})
	var b [1]byte
	if err := tc.HandshakeContext(dctx); err == nil {
		_, err = io.ReadFull(tc, b[:])
	}
	if err != nil {
		raw.Close()
		return nil, err
	}
	raw.SetDeadline(time.Time{})
	return tc, nil
}

// flood has a granted peer send up to floodMax requests made by mk over one
// pooled connection, floodWorkers at a time, until ctx ends; it returns a
// count of answers by status.
func flood(ctx context.Context, s *scene, mk func(ctx context.Context) (*http.Request, error)) string {
	hc, closeFn, err := malloryClient(s)
	if err != nil {
		return err.Error()
	}
	defer closeFn()
	var (
		sent   atomic.Int64
		mu     sync.Mutex
		status = map[int]int{}
		wg     sync.WaitGroup
	)
	tok := tokens(ctx, floodWorkers, floodHz)
	for range floodWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && sent.Add(1) <= floodMax {
				select {
				case <-ctx.Done():
					continue
				case <-tok:
				}
				req, err := mk(ctx)
				if err != nil {
					return
				}
				code, _, err := do(hc, req)
				if err != nil {
					code = -1
				}
				mu.Lock()
				status[code]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return fmt.Sprintf("granted peer sent %d requests; answers by status (-1: transport error): %v", min(sent.Load(), floodMax), status)
}

// selfCert is a stranger's certificate: self-signed with its own key, valid now.
func selfCert(key identity.PrivateKey) (tls.Certificate, error) {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public().Ed25519(), key.Signer())
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key.Signer()}, nil
}

// unsigned is a call request with no signature at all.
func unsigned(s *scene) func(context.Context) (*http.Request, error) {
	return func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodPost, transport.PeerURL(s.vKey, "/v1/call/echo"), strings.NewReader(`{}`))
	}
}

// badlySigned is a call request whose signature is one character off.
func badlySigned(s *scene) func(context.Context) (*http.Request, error) {
	return func(ctx context.Context) (*http.Request, error) {
		body := []byte(`{}`)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, transport.PeerURL(s.vKey, "/v1/call/echo"), bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		if _, err := wire.SignRequest(req, body, wire.SignParams{Key: s.mallory, Audience: s.vKey, Capability: "echo", Now: time.Now()}); err != nil {
			return nil, err
		}
		sig := []byte(req.Header.Get(wire.HeaderSignature))
		k := bytes.IndexByte(sig, ':') + 5
		sig[k] = 'A' + (sig[k]-'A'+1)%26
		if sig[k] < 'A' || sig[k] > 'Z' {
			sig[k] = 'B'
		}
		req.Header.Set(wire.HeaderSignature, string(sig))
		return req, nil
	}
}

// validlySigned is a correctly signed call request with a fresh nonce each.
func validlySigned(s *scene) func(context.Context) (*http.Request, error) {
	return func(ctx context.Context) (*http.Request, error) {
		body := []byte(`{"n":1}`)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, transport.PeerURL(s.vKey, "/v1/call/echo"), bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		_, err = wire.SignRequest(req, body, wire.SignParams{Key: s.mallory, Audience: s.vKey, Capability: "echo", Now: time.Now()})
		return req, err
	}
}

// Per-attack bounds, from the node's documented limits (README, "Resource
// limits"): a peer's refusals are aggregated per stage, at most 2 entries and
// 2 log lines per stage in the first minute (5 stages); strangers' per source
// address, at most 2 x (256 + 7) = 526 entries a minute whatever the number of
// sources; the transport logs a refusal per (side, reason, source) at most
// once per 10 s, for at most 128 keys at a time. A granted peer's refused
// handshakes (over its connection cap) are counted by its source addresses.
var (
	peerBounds     = bounds{peerRows: 10, sourceRows: 2 * grantedSources, logLines: 40}
	strangerBounds = bounds{sourceRows: 2 * (256 + 7), logLines: 2 * (128 + 256 + 7)}
)

// TestHostileLoad runs the findings of issue 8 as attacks, one after the
// other, against the same victim, which is never restarted.
func TestHostileLoad(t *testing.T) {
	skipShort(t)
	var margin int64
	s := newScene(t, func(v *testnet.Node) { margin = lowFreeMark(t, v) })
	t.Run("1 strangers hold silent connections, slow hellos and unknown keys", func(t *testing.T) {
		attack(t, s, strangerBounds, func(ctx context.Context, t *testing.T) string {
			done := make(chan string)
			go func() { done <- newAddressHandshakes(ctx, s) }()
			return strangers(ctx, s.v.Addr) + "; " + <-done
		})
	})
	t.Run("2 a granted peer opens thousands of connections", func(t *testing.T) {
		lim := fdCount(s.vPID) + peerFDHeadroom
		setNoFile(t, s.vPID, lim)
		defer setNoFile(t, s.vPID, victimNoFile)
		u := attack(t, s, peerBounds, func(ctx context.Context, t *testing.T) string { return grantedConns(ctx, s) })
		if u.maxFDs >= lim {
			t.Errorf("victim reached its descriptor limit %d", lim)
		}
	})
	t.Run("3a a granted peer floods unsigned requests", func(t *testing.T) {
		attack(t, s, peerBounds, func(ctx context.Context, t *testing.T) string { return flood(ctx, s, unsigned(s)) })
	})
	t.Run("3b a granted peer floods badly signed requests", func(t *testing.T) {
		attack(t, s, peerBounds, func(ctx context.Context, t *testing.T) string { return flood(ctx, s, badlySigned(s)) })
	})
	t.Run("3c a quarantined peer limited to 1/s floods unsigned requests", func(t *testing.T) {
		s.v.Must(t, "limit", "set", "mallory", "--rate", "1/s", "--burst", "1")
		s.v.Must(t, "trust", "set", "mallory", "--ceiling", "quarantined")
		attack(t, s, peerBounds, func(ctx context.Context, t *testing.T) string { return flood(ctx, s, unsigned(s)) })
	})
	t.Run("4 a refused peer floods fresh nonces", func(t *testing.T) {
		attack(t, s, peerBounds, func(ctx context.Context, t *testing.T) string { return flood(ctx, s, validlySigned(s)) })
		// A refused request's nonce is given back, so the flood above held no
		// share of the replay window: the same request sent again is refused
		// for what it is, not as a replay.
		hc, closeFn, err := malloryClient(s)
		if err != nil {
			t.Fatal(err)
		}
		defer closeFn()
		req, err := validlySigned(s)(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		first, b1, err := do(hc, req.Clone(context.Background()))
		if err != nil {
			t.Fatal(err)
		}
		req2, _ := http.NewRequest(http.MethodPost, req.URL.String(), strings.NewReader(`{"n":1}`))
		req2.Header = req.Header.Clone()
		again, b2, err := do(hc, req2)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("refused request: %d %s; sent again: %d %s", first, b1, again, b2)
		if first == http.StatusOK || again == http.StatusConflict || again != first {
			t.Errorf("refused request answered %d, the same sent again %d (%s); want the same refusal twice, not a replay (409)", first, again, b2)
		}
	})
	t.Run("5 the disk fills up", func(t *testing.T) { diskFills(t, s, margin) })
	// The log survived every attack intact.
	if rows := auditRows(t, s.v); rows == 0 {
		t.Errorf("audit verify: no entries")
	}
}

// malloryClient is an HTTP client over the attacking peer's own connection.
func malloryClient(s *scene) (*http.Client, func(), error) {
	tr, err := transport.New(transport.Config{Identity: s.mallory, Peers: admitAll{}, Listen: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		return nil, nil, err
	}
	return &http.Client{Transport: tr.RoundTripper(func(context.Context, identity.PublicKey) (string, error) { return s.v.Addr, nil })}, func() { tr.Close() }, nil
}

// setNoFile sets the soft RLIMIT_NOFILE of process pid (prlimit(2); the hard
// limit stays, so the soft one can be raised again).
func setNoFile(t *testing.T, pid, n int) {
	t.Helper()
	var old syscall.Rlimit
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_NOFILE, 0, uintptr(unsafe.Pointer(&old)), 0, 0); errno != 0 {
		t.Fatalf("prlimit %d: %v", pid, errno)
	}
	lim := syscall.Rlimit{Cur: uint64(n), Max: old.Max}
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_NOFILE, uintptr(unsafe.Pointer(&lim)), 0, 0, 0); errno != 0 {
		t.Fatalf("prlimit %d nofile %d: %v", pid, n, errno)
	}
	t.Logf("victim RLIMIT_NOFILE soft limit %d", n)
}
