package bench_transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// The framing benchmarks ask what ADR 29 (proposed) would buy: a request
// and its answer carried by x/net/http2 against the same bytes in a minimal
// framing (length, stream ID, payload; one reader goroutine per connection,
// writers write under a mutex, the server runs a goroutine per request).
// Both carry ~600 bytes of headers that change on every request, as the
// signature headers do, and 1 KiB of body each way, over plain mTLS.
//
// work is CPU burnt by the caller before each request and by the handler
// before it answers, standing in for a call's signatures, sanitizer and
// audit commit: with work between hand-offs the idle core's thread goes to
// sleep, and every goroutine wake-up pays for waking it, as on the call path.

// fakeHeaders returns signature-like header values, new for each request.
func fakeHeaders() [][2]string {
	var r [160]byte
	rand.Read(r[:])
	enc := base64.StdEncoding.EncodeToString
	return [][2]string{
		{"content-digest", "sha-256=:" + enc(r[:32]) + ":"},
		{"treaty-audience", "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"},
		{"treaty-capability", "echo"},
		{"signature-input", `treaty=("@method" "@target-uri" "content-digest" "treaty-audience" "treaty-capability");created=1765065000;expires=1765065300;nonce="` + enc(r[32:48]) + `";keyid="did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";alg="ed25519"`},
		{"signature", "treaty=:" + enc(r[48:112]) + ":"},
	}
}

// burn spends about d of CPU.
func burn(d time.Duration) {
	if d <= 0 {
		return
	}
	var h [32]byte
	for s := time.Now(); time.Since(s) < d; {
		for range 16 {
			h = sha256.Sum256(h[:])
		}
	}
}

// Frame: 4-byte payload length, 4-byte stream ID, payload. A payload is a
// header block (2-byte count, then 2-byte-length-prefixed names and values)
// and the body after it.
const maxFrame = 1 << 20

func appendFrame(dst []byte, id uint32, hdrs [][2]string, body []byte) []byte {
	n := 2 + len(body)
	for _, h := range hdrs {
		n += 4 + len(h[0]) + len(h[1])
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = binary.BigEndian.AppendUint32(dst, id)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(hdrs)))
	for _, h := range hdrs {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(h[0])))
		dst = append(dst, h[0]...)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(h[1])))
		dst = append(dst, h[1]...)
	}
	return append(dst, body...)
}

func readFrame(r *bufio.Reader) (id uint32, payload []byte, err error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r, payload)
	return binary.BigEndian.Uint32(h[4:]), payload, err
}

// splitPayload parses a payload's header block and returns the body.
func splitPayload(p []byte) (hdrs [][2]string, body []byte, err error) {
	bad := errors.New("malformed payload")
	if len(p) < 2 {
		return nil, nil, bad
	}
	count := int(binary.BigEndian.Uint16(p))
	p = p[2:]
	str := func() (string, bool) {
		if len(p) < 2 {
			return "", false
		}
		l := int(binary.BigEndian.Uint16(p))
		if len(p) < 2+l {
			return "", false
		}
		s := string(p[2 : 2+l])
		p = p[2+l:]
		return s, true
	}
	for range count {
		k, ok1 := str()
		v, ok2 := str()
		if !ok1 || !ok2 {
			return nil, nil, bad
		}
		hdrs = append(hdrs, [2]string{k, v})
	}
	return hdrs, p, nil
}

// framedServer answers each request frame with its body, after work.
func framedServer(work time.Duration) func(*tls.Conn) {
	return func(c *tls.Conn) {
		c.Write([]byte{1}) // read by dial, as for the HTTP/2 baseline
		var wmu sync.Mutex
		r := bufio.NewReaderSize(c, 64<<10)
		for {
			id, p, err := readFrame(r)
			if err != nil {
				return
			}
			go func() {
				_, body, err := splitPayload(p)
				if err != nil {
					return
				}
				burn(work)
				out := appendFrame(make([]byte, 0, 8+len(p)), id, fakeHeaders(), body)
				wmu.Lock()
				c.Write(out)
				wmu.Unlock()
			}()
		}
	}
}

// framedClient multiplexes calls over one connection.
type framedClient struct {
	c       *tls.Conn
	wmu     sync.Mutex
	mu      sync.Mutex
	next    uint32
	waiting map[uint32]chan []byte
}

func newFramedClient(c *tls.Conn) *framedClient {
	fc := &framedClient{c: c, waiting: map[uint32]chan []byte{}}
	go func() {
		r := bufio.NewReaderSize(c, 64<<10)
		for {
			id, p, err := readFrame(r)
			if err != nil {
				return
			}
			fc.mu.Lock()
			ch := fc.waiting[id]
			delete(fc.waiting, id)
			fc.mu.Unlock()
			if ch != nil {
				ch <- p
			}
		}
	}()
	return fc
}

func (fc *framedClient) call(b *testing.B) {
	ch := make(chan []byte, 1)
	fc.mu.Lock()
	fc.next++
	id := fc.next
	fc.waiting[id] = ch
	fc.mu.Unlock()
	out := appendFrame(make([]byte, 0, 2048), id, fakeHeaders(), payload)
	fc.wmu.Lock()
	_, err := fc.c.Write(out)
	fc.wmu.Unlock()
	if err != nil {
		b.Fatal(err)
	}
	select {
	case p := <-ch:
		if _, body, err := splitPayload(p); err != nil || len(body) != len(payload) {
			b.Fatalf("answer: %d bytes, %v", len(body), err)
		}
	case <-time.After(10 * time.Second):
		b.Fatal("no answer in 10 s")
	}
}

// framingPair returns a framed call and an HTTP/2 call, each with work on
// both sides, over plain mTLS, warmed up.
func framingPair(b *testing.B, work time.Duration) (framed, h2 func()) {
	fb := newBaseline(b, "bench-framed/1", framedServer(work))
	fc := newFramedClient(fb.dial(b))
	b.Cleanup(func() { fc.c.Close() })

	h2srv := &http2.Server{}
	hb := newBaseline(b, http2.NextProtoTLS, func(c *tls.Conn) {
		c.Write([]byte{1})
		h2srv.ServeConn(c, &http2.ServeConnOpts{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			burn(work)
			for _, h := range fakeHeaders() {
				w.Header().Set(h[0], h[1])
			}
			w.Write(body)
		})})
	})
	tr := &http2.Transport{
		DialTLSContext:     func(context.Context, string, string, *tls.Config) (net.Conn, error) { return hb.dial(b), nil },
		DisableCompression: true,
	}
	b.Cleanup(tr.CloseIdleConnections)
	framed = func() { burn(work); fc.call(b) }
	h2 = func() {
		burn(work)
		req, _ := http.NewRequest(http.MethodPost, "https://baseline/echo", bytes.NewReader(payload))
		for _, h := range fakeHeaders() {
			req.Header.Set(h[0], h[1])
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != int64(len(payload)) {
			b.Fatalf("answer: %d bytes", n)
		}
	}
	for range 50 {
		framed()
		h2()
	}
	return framed, h2
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFraming: one caller, p50 and CPU per call of each protocol minus
// the work (2 x work per call), alternating in rounds of 200 calls.
func BenchmarkFraming(b *testing.B) {
	for _, work := range []time.Duration{0, 200 * time.Microsecond} {
		b.Run(fmt.Sprintf("work=%v", work), func(b *testing.B) {
			framed, h2 := framingPair(b, work)
			var fl, hl []time.Duration
			var fcpu, hcpu time.Duration
			round := func(f func(), lat *[]time.Duration, cpu *time.Duration) {
				c0 := processCPU(b)
				for range 200 {
					s := time.Now()
					f()
					*lat = append(*lat, time.Since(s))
				}
				*cpu += processCPU(b) - c0
			}
			for b.Loop() {
				round(framed, &fl, &fcpu)
				round(h2, &hl, &hcpu)
			}
			p50 := func(d []time.Duration) float64 {
				slices.Sort(d)
				return float64(d[len(d)/2]-2*work) / 1e3
			}
			perCall := func(c time.Duration, n int) float64 { return float64(c-time.Duration(n)*2*work) / float64(n) / 1e3 }
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(p50(fl), "framed-p50-µs")
			b.ReportMetric(p50(hl), "http2-p50-µs")
			b.ReportMetric(perCall(fcpu, len(fl)), "framed-cpu-µs/call")
			b.ReportMetric(perCall(hcpu, len(hl)), "http2-cpu-µs/call")
		})
	}
}

// BenchmarkFraming64: 64 callers on one connection, calls/s and CPU per
// call (work included: 2 x work of it is the stand-in's).
func BenchmarkFraming64(b *testing.B) {
	for _, work := range []time.Duration{0, 200 * time.Microsecond} {
		b.Run(fmt.Sprintf("work=%v", work), func(b *testing.B) {
			framed, h2 := framingPair(b, work)
			const callers, each = 64, 40
			run := func(f func()) (perSec float64, cpu time.Duration) {
				var wg sync.WaitGroup
				c0, s := processCPU(b), time.Now()
				for range callers {
					wg.Go(func() {
						for range each {
							f()
						}
					})
				}
				wg.Wait()
				return callers * each / time.Since(s).Seconds(), processCPU(b) - c0
			}
			var fr, hr []float64
			var fcpu, hcpu time.Duration
			for b.Loop() {
				r, c := run(framed)
				fr, fcpu = append(fr, r), fcpu+c
				r, c = run(h2)
				hr, hcpu = append(hr, r), hcpu+c
			}
			n := float64(callers * each * len(fr))
			med := func(x []float64) float64 { slices.Sort(x); return x[len(x)/2] }
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(med(fr), "framed-calls/s")
			b.ReportMetric(med(hr), "http2-calls/s")
			b.ReportMetric(float64(fcpu)/n/1e3, "framed-cpu-µs/call")
			b.ReportMetric(float64(hcpu)/n/1e3, "http2-cpu-µs/call")
		})
	}
}
