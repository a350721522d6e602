package membership

import (
	"bytes"
	"encoding/base64"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// seeded is a deterministic nonce source.
func seeded(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0] = byte(seed)
	return rand.NewChaCha8(s)
}

func TestInviteRoundTrip(t *testing.T) {
	k := testKey(t, 1)
	v, tok, err := IssueInvite(k, "127.0.0.1:7420", t0, time.Hour, 3, seeded(1))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, InvitePrefix+".") || len(tok) > 256 {
		t.Fatalf("token %q: want the prefix and a compact form", tok)
	}
	got, err := ParseInvite(" " + tok + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got != v || got.Inviter != k.Public() || got.Uses != 3 || !got.Expires.Equal(t0.Add(time.Hour)) {
		t.Fatalf("parsed %+v, issued %+v", got, v)
	}
	if err := got.Check(t0.Add(59 * time.Minute)); err != nil {
		t.Fatalf("fresh invite: %v", err)
	}
	if err := got.Check(t0.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("at expiry: %v, want ErrExpired", err)
	}
}

func TestIssueInviteBounds(t *testing.T) {
	k := testKey(t, 1)
	for _, tc := range []struct {
		name string
		addr string
		ttl  time.Duration
		uses int
	}{
		{"ttl too short", "127.0.0.1:1", time.Second, 1},
		{"ttl too long", "127.0.0.1:1", 31 * 24 * time.Hour, 1},
		{"no uses", "127.0.0.1:1", time.Hour, 0},
		{"too many uses", "127.0.0.1:1", time.Hour, MaxInviteUses + 1},
		{"uses that overflow 16 bits", "127.0.0.1:1", time.Hour, 65536 + 1},
		{"bad address", "nohost", time.Hour, 1},
		{"long address", strings.Repeat("a", 300) + ":1", time.Hour, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := IssueInvite(k, tc.addr, t0, tc.ttl, tc.uses, seeded(1)); err == nil {
				t.Fatal("issued")
			}
		})
	}
}

// resign re-encodes a tampered body with a valid signature by k, so that a
// test reaches the field checks behind the signature.
func resign(kind, prefix string, k identity.PrivateKey, body []byte) string {
	return encodeText(prefix, body, k.Sign(signingInput(kind, body)))
}

func TestInviteRefusals(t *testing.T) {
	k, other := testKey(t, 1), testKey(t, 2)
	v, tok, err := IssueInvite(k, "127.0.0.1:7420", t0, time.Hour, 1, seeded(1))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, InvitePrefix+"."))
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 1
		return InvitePrefix + "." + base64.RawURLEncoding.EncodeToString(b)
	}
	body := v.body()
	// A forgery: the inviter's key named, but signed by another.
	forged := encodeText(InvitePrefix, body, other.Sign(signingInput(KindInvite, body)))
	// An admit signature does not verify as an invite (domain separation).
	crossKind := encodeText(InvitePrefix, body, k.Sign(signingInput(KindAdmit, body)))
	withUses := func(u int) string {
		b := bytes.Clone(body)
		b[41], b[42] = byte(u>>8), byte(u)
		return resign(KindInvite, InvitePrefix, k, b)
	}
	for _, tc := range []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrMalformed},
		{"other prefix", strings.Replace(tok, "invite", "admit", 1), ErrMalformed},
		{"padded base64", tok + "=", ErrMalformed},
		{"standard base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(tok) + "+", ErrMalformed},
		{"truncated", tok[:len(tok)-4], ErrMalformed},
		{"trailing byte", InvitePrefix + "." + base64.RawURLEncoding.EncodeToString(append(bytes.Clone(raw), 0)), ErrMalformed},
		{"oversized", InvitePrefix + "." + strings.Repeat("A", MaxStatementText), ErrMalformed},
		{"flipped expiry bit", flip(40), ErrBadSignature},
		{"flipped signature bit", flip(len(raw) - 1), ErrBadSignature},
		{"flipped version", flip(0), ErrMalformed},
		{"forged by another key", forged, ErrBadSignature},
		{"signature of another kind", crossKind, ErrBadSignature},
		{"zero uses, validly signed", withUses(0), ErrMalformed},
		{"uses above the bound, validly signed", withUses(MaxInviteUses + 1), ErrMalformed},
		{"fullwidth dot after prefix", InvitePrefix + "\uff0e" + tok[len(InvitePrefix)+1:], ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseInvite(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var se *StatementError
			if !errors.As(err, &se) || se.Kind != KindInvite {
				t.Fatalf("err %T is not a StatementError about an invite", err)
			}
			if len(tok) > 20 && strings.Contains(err.Error(), tok[20:40]) {
				t.Fatal("the error quotes the token")
			}
		})
	}
}

func TestAdmitRoundTripAndRefusals(t *testing.T) {
	inviter, member, other := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	a := Admit{Inviter: inviter.Public(), Member: member.Public(), Name: "delta", Addr: "127.0.0.1:9", Issued: t0}
	txt, err := a.Sign(inviter)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseAdmit(txt)
	if err != nil || got != a {
		t.Fatalf("ParseAdmit = %+v, %v; want %+v", got, err, a)
	}
	if _, err := a.Sign(other); err == nil {
		t.Fatal("signed an introduction with a key that is not the inviter's")
	}
	self := a
	self.Member = inviter.Public()
	if _, err := self.Sign(inviter); !errors.Is(err, ErrMalformed) {
		t.Fatalf("self-introduction: %v", err)
	}
	for _, name := range []string{"", "Delta", "del\u202eta", "d e", strings.Repeat("d", 65)} {
		b := a
		b.Name = name
		if _, err := b.Sign(inviter); !errors.Is(err, ErrMalformed) {
			t.Errorf("name %q: %v, want ErrMalformed", name, err)
		}
	}
	body := a.body()
	forged := encodeText(AdmitPrefix, body, other.Sign(signingInput(KindAdmit, body)))
	if _, err := ParseAdmit(forged); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged introduction: %v", err)
	}
	st, err := ParseAdmission(txt)
	if err != nil || st.Kind != KindAdmit || *st.Admit != a {
		t.Fatalf("ParseStatement = %+v, %v", st, err)
	}
	if _, err := ParseAdmission("treaty-invite-v1.AAAA"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("an invite is not a statement: %v", err)
	}
}
