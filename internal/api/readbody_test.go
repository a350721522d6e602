package api

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// readBody reads what io.ReadAll reads whatever Content-Length claims, and
// returns the reader's error with what it read before it.
func TestReadBodyIsReadAll(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, size := range []int{0, 1, 511, 512, 513, 1100, presizeMax - 1, presizeMax, presizeMax + 1, 200 << 10} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(r.IntN(256))
		}
		for _, n := range []int64{-1, 0, int64(size), int64(size) - 1, int64(size) + 1, int64(size) * 2, 1 << 40} {
			for _, wrap := range []func(io.Reader) io.Reader{
				func(r io.Reader) io.Reader { return r }, iotest.OneByteReader, iotest.HalfReader, iotest.DataErrReader,
			} {
				if size > 4096 && n != int64(size) {
					continue // the one-byte readers over large bodies say nothing more
				}
				got, err := readBody(wrap(bytes.NewReader(data)), n)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("size %d, Content-Length %d: read %d bytes, %v; want %d bytes", size, n, len(got), err, size)
				}
			}
		}
	}
	boom := errors.New("boom")
	got, err := readBody(io.MultiReader(bytes.NewReader([]byte("abc")), iotest.ErrReader(boom)), 10)
	if !errors.Is(err, boom) || string(got) != "abc" {
		t.Fatalf("readBody = %q, %v; want abc, boom", got, err)
	}
}
