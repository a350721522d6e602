package membership

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/treaty-dev/treaty/internal/identity"
)

// Limits of a peer record. They keep an encoded record within memberlist's
// 512-byte node metadata (MaxRecordBytes), which is where records travel.
const (
	MaxNicknameBytes = 32 // Record.Nickname, UTF-8 bytes
	MaxOrgBytes      = 64 // Record.Org, UTF-8 bytes
	MaxAddrs         = 4  // entries in Record.Addrs
	MaxAddrBytes     = 64 // one Record.Addrs entry ("host:port")
	// MaxRelays bounds Record.Relays. Relays share the MaxAddrs slots with
	// addresses (a relay takes 33 bytes, an address up to 65), which keeps
	// the worst case at 508 bytes.
	MaxRelays      = 2
	MaxRecordBytes = 512 // an encoded, signed record; the worst case is 508
)

// recordMagic opens every encoded record. It doubles as the format version:
// a new layout gets a new magic, never a reinterpretation of this one.
var recordMagic = [4]byte{'T', 'R', 'R', '2'}

// recordDomain separates record signatures from every other ed25519 signature a
// treaty key makes (statements, RFC 9421 messages, certificates).
const recordDomain = "treaty/membership/record/v2\x00"

// Fields are the parts of a record a node chooses about itself. Update takes
// them; sequence, expiry, key and signature are filled in by the Membership.
type Fields struct {
	// Nickname is the name the peer gives itself, for display only: it is not
	// unique and proves nothing. At most MaxNicknameBytes of printable UTF-8
	// in NFC; may be empty.
	Nickname string
	// Org is the organisation the peer says it belongs to, for display only.
	// Same rules as Nickname, at most MaxOrgBytes.
	Org string
	// Addrs are the addresses ("host:port", ASCII, port 1-65535) where the
	// peer accepts connections, best first; 0 to MaxAddrs entries, no
	// duplicates. Membership adds its gossip address if it is missing.
	Addrs []string
	// Digest is the SHA-256 of what the peer advertises (its agent card);
	// zero if it advertises nothing.
	Digest [32]byte
	// Relays are the keys of members whose relays this peer is registered
	// with, best first: a peer that names relays accepts no inbound
	// connections, and callers reach it through one of them (docs/membership.md,
	// "Relays"). 0 to MaxRelays entries, no duplicates, not the peer itself;
	// len(Addrs)+len(Relays) is at most MaxAddrs.
	Relays []identity.PublicKey
}

// Record is a peer's signed statement of who it is and where it is. Only the
// key is trusted; every other field is the peer's claim about itself, and a
// verified record proves only that the key's holder made that claim.
type Record struct {
	Key identity.PublicKey
	Fields
	// Seq orders the records of one key: a receiver keeps the highest and
	// refuses lower ones. Membership uses the Unix time in milliseconds (or
	// the previous Seq + 1 if larger), so it grows across restarts without
	// being stored.
	Seq uint64
	// Expires is when receivers stop believing the record (whole seconds).
	Expires time.Time
	// Sig is the key's ed25519 signature over recordDomain and the encoding
	// of every other field.
	Sig []byte
}

// Errors of record and statement decoding and verification. Each maps to one
// Evidence reason (see reasonOf).
var (
	ErrMalformed    = errors.New("membership: malformed encoding")
	ErrBadSignature = errors.New("membership: signature does not verify")
	ErrExpired      = errors.New("membership: expired")
	ErrWrongKey     = errors.New("membership: claims another key")
	ErrReplayed     = errors.New("membership: sequence went backwards")
)

// body appends the signed part of r (everything but Sig) to b.
func (r *Record) body(b []byte) []byte {
	b = append(b, recordMagic[:]...)
	b = append(b, r.Key.Bytes()...)
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Expires.Unix()))
	b = append(b, r.Digest[:]...)
	b = appendStr8(b, r.Nickname)
	b = appendStr8(b, r.Org)
	b = append(b, byte(len(r.Addrs)))
	for _, a := range r.Addrs {
		b = appendStr8(b, a)
	}
	b = append(b, byte(len(r.Relays)))
	for _, k := range r.Relays {
		b = append(b, k.Bytes()...)
	}
	return b
}

func appendStr8(b []byte, s string) []byte {
	b = append(b, byte(len(s)))
	return append(b, s...)
}

// signingBase is what the record's signature covers.
func (r *Record) signingBase() []byte {
	return r.body([]byte(recordDomain))
}

// Marshal returns the canonical encoding of r. It fails if r breaks a limit
// or lacks its signature, so everything it returns decodes again.
func (r *Record) Marshal() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	if len(r.Sig) != 64 {
		return nil, fmt.Errorf("%w: record is not signed", ErrMalformed)
	}
	return append(r.body(make([]byte, 0, MaxRecordBytes)), r.Sig...), nil
}

// SignRecord fills in r.Key and r.Sig with k. It checks r's fields first.
func SignRecord(k identity.PrivateKey, r *Record) error {
	r.Key = k.Public()
	if err := r.check(); err != nil {
		return err
	}
	r.Sig = k.Sign(r.signingBase())
	return nil
}

// Verify checks r's signature and that it has not expired at now. It does not
// know which key r should be about; callers compare Key themselves.
func (r *Record) Verify(now time.Time) error {
	if r.Key.IsZero() || !r.Key.Verify(r.signingBase(), r.Sig) {
		return ErrBadSignature
	}
	return r.checkExpiry(now)
}

func (r *Record) checkExpiry(now time.Time) error {
	if !now.Before(r.Expires) {
		return fmt.Errorf("%w: record of %s expired at %s", ErrExpired, r.Key.Short(), r.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// UnmarshalRecord decodes b strictly: exactly one record and nothing after it,
// every field within its limit, and b must be the canonical encoding (the one
// Marshal would produce). It does not verify the signature.
func UnmarshalRecord(b []byte) (Record, error) {
	var r Record
	if len(b) > MaxRecordBytes {
		return r, fmt.Errorf("%w: record of %d bytes exceeds %d", ErrMalformed, len(b), MaxRecordBytes)
	}
	d := decoder{b: b}
	if !bytes.Equal(d.take(4), recordMagic[:]) {
		return r, fmt.Errorf("%w: not a record (magic)", ErrMalformed)
	}
	key, err := identity.PublicKeyFromEd25519(d.take(32))
	if err != nil && d.err == nil {
		return r, fmt.Errorf("%w: record key: %v", ErrMalformed, err)
	}
	r.Key = key
	r.Seq = d.u64()
	exp := d.u64()
	copy(r.Digest[:], d.take(32))
	r.Nickname = d.str8()
	r.Org = d.str8()
	n := d.u8()
	if int(n) > MaxAddrs {
		return Record{}, fmt.Errorf("%w: %d addresses exceed %d", ErrMalformed, n, MaxAddrs)
	}
	for i := 0; i < int(n) && d.err == nil; i++ {
		r.Addrs = append(r.Addrs, d.str8())
	}
	n = d.u8()
	if int(n) > MaxRelays {
		return Record{}, fmt.Errorf("%w: %d relays exceed %d", ErrMalformed, n, MaxRelays)
	}
	for i := 0; i < int(n) && d.err == nil; i++ {
		k, err := identity.PublicKeyFromEd25519(d.take(32))
		if err != nil && d.err == nil {
			return Record{}, fmt.Errorf("%w: Relays[%d]: %v", ErrMalformed, i, err)
		}
		r.Relays = append(r.Relays, k)
	}
	r.Sig = bytes.Clone(d.take(64))
	if d.err != nil {
		return Record{}, fmt.Errorf("%w: record: %v", ErrMalformed, d.err)
	}
	if len(d.b) != 0 {
		return Record{}, fmt.Errorf("%w: %d bytes after the record", ErrMalformed, len(d.b))
	}
	if exp > uint64(maxUnix) {
		return Record{}, fmt.Errorf("%w: expiry out of range", ErrMalformed)
	}
	r.Expires = time.Unix(int64(exp), 0).UTC()
	if err := r.check(); err != nil {
		return Record{}, err
	}
	return r, nil
}

// maxUnix bounds expiry times (year 9999) so they survive time.Time round trips.
const maxUnix = 253402300799

// check enforces the limits and canonical form of every field but Sig.
func (r *Record) check() error {
	if r.Key.IsZero() {
		return fmt.Errorf("%w: record has no key", ErrMalformed)
	}
	if r.Seq == 0 {
		return fmt.Errorf("%w: record sequence is 0", ErrMalformed)
	}
	if r.Expires.Unix() <= 0 || r.Expires.Unix() > maxUnix || r.Expires.Nanosecond() != 0 {
		return fmt.Errorf("%w: record expiry must be whole seconds after 1970 and before 10000", ErrMalformed)
	}
	if slices.ContainsFunc(r.Relays, r.Key.Equal) {
		return fmt.Errorf("%w: Relays names the record's own key", ErrMalformed)
	}
	return r.Fields.check()
}

// check validates f against the documented limits; the error names the field.
func (f *Fields) check() error {
	if err := checkText("Nickname", f.Nickname, MaxNicknameBytes); err != nil {
		return err
	}
	if err := checkText("Org", f.Org, MaxOrgBytes); err != nil {
		return err
	}
	if len(f.Addrs) > MaxAddrs {
		return fmt.Errorf("%w: Addrs has %d entries, at most %d", ErrMalformed, len(f.Addrs), MaxAddrs)
	}
	for i, a := range f.Addrs {
		if err := checkAddr(a); err != nil {
			return fmt.Errorf("%w: Addrs[%d]: %v", ErrMalformed, i, err)
		}
		if slices.Index(f.Addrs, a) != i {
			return fmt.Errorf("%w: Addrs[%d] %q is listed twice", ErrMalformed, i, a)
		}
	}
	if len(f.Relays) > MaxRelays {
		return fmt.Errorf("%w: Relays has %d entries, at most %d", ErrMalformed, len(f.Relays), MaxRelays)
	}
	if len(f.Addrs)+len(f.Relays) > MaxAddrs {
		return fmt.Errorf("%w: Addrs and Relays have %d entries together, at most %d", ErrMalformed, len(f.Addrs)+len(f.Relays), MaxAddrs)
	}
	for i, k := range f.Relays {
		if k.IsZero() {
			return fmt.Errorf("%w: Relays[%d] is the zero key", ErrMalformed, i)
		}
		if slices.IndexFunc(f.Relays, k.Equal) != i {
			return fmt.Errorf("%w: Relays[%d] %s is listed twice", ErrMalformed, i, k.Short())
		}
	}
	return nil
}

// checkText refuses what could mislead a reader of a members table: invalid
// UTF-8, control and format characters (bidi overrides, zero-width joiners),
// and non-NFC forms that would make two equal-looking names differ in bytes.
func checkText(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrMalformed, field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrMalformed, field)
	}
	for _, c := range s {
		if unicode.IsControl(c) || unicode.Is(unicode.Cf, c) || c == utf8.RuneError ||
			(unicode.IsSpace(c) && c != ' ') {
			return fmt.Errorf("%w: %s contains the character %U", ErrMalformed, field, c)
		}
	}
	if !norm.NFC.IsNormalString(s) {
		return fmt.Errorf("%w: %s is not in Unicode NFC", ErrMalformed, field)
	}
	return nil
}

// checkAddr accepts "host:port" with an ASCII host (a DNS name or an IP
// literal; IPv6 in brackets) and a numeric port 1-65535, in canonical form.
func checkAddr(a string) error {
	if len(a) == 0 || len(a) > MaxAddrBytes {
		return fmt.Errorf("address is %d bytes, allowed 1 to %d", len(a), MaxAddrBytes)
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("not host:port")
	}
	if host == "" {
		return fmt.Errorf("empty host")
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '-' || c == ':' || c == '_'
		if !ok {
			return fmt.Errorf("host has the byte %#x; only ASCII letters, digits and .-:_ are allowed", c)
		}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 || strconv.FormatUint(p, 10) != port {
		return fmt.Errorf("port %q is not 1-65535 in canonical form", port)
	}
	if net.JoinHostPort(host, port) != a {
		return fmt.Errorf("not in canonical host:port form")
	}
	return nil
}

// decoder reads fixed and length-prefixed fields; the first short read sets
// err and every later read returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return make([]byte, n)
	}
	if len(d.b) < n {
		d.err = fmt.Errorf("truncated: want %d bytes, have %d", n, len(d.b))
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() byte    { return d.take(1)[0] }
func (d *decoder) u16() uint16 { return binary.BigEndian.Uint16(d.take(2)) }
func (d *decoder) u64() uint64 { return binary.BigEndian.Uint64(d.take(8)) }
func (d *decoder) str8() string {
	n := d.u8()
	return string(d.take(int(n)))
}
