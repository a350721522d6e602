package membership

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzParseAdmission feeds the decoders of every admission statement and of
// join tokens: they must never panic, and whatever they accept must re-encode
// to the exact input (one statement, one encoding).
func FuzzParseAdmission(f *testing.F) {
	k, n := testKey(f, 1), testKey(f, 2)
	_, inv, _ := IssueInvite(k, "127.0.0.1:7420", t0, time.Hour, 1, seeded(1))
	adm, _ := Admit{Inviter: k.Public(), Member: n.Public(), Name: "delta", Addr: "[::1]:9", Issued: t0}.Sign(k)
	_, rot, _ := SignRotation(k, n, t0)
	_, rev, _ := SignRevocation(k, t0, "lost")
	f.Add(inv)                             // a valid token
	f.Add(adm)                             // a valid introduction
	f.Add(rot)                             // a valid rotation
	f.Add(rev)                             // a valid revocation
	f.Add(inv[:len(inv)-3])                // truncated
	f.Add(rot + "A")                       // one base64 character too many
	f.Add("treaty-revoke-v1.")             // empty body
	f.Add("treaty-admit-v1.////")          // standard alphabet
	f.Add("treaty-invite-v1.AQ")           // version byte only
	f.Add("treaty-rotate-v1.\u00e9\u00e9") // non-ASCII after the prefix
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := ParseInvite(s); err == nil {
			_ = v.Check(t0)
		}
		st, err := ParseAdmission(s)
		if err != nil {
			return
		}
		var prefix string
		var body []byte
		switch st.Kind {
		case KindAdmit:
			prefix, body = AdmitPrefix, st.Admit.body()
		case KindRotate:
			prefix, body = RotatePrefix, st.Rotation.body()
		case KindRevoke:
			prefix, body = RevokePrefix, st.Revocation.body()
		}
		raw, err := decodeText(st.Kind, prefix, st.Text)
		if err != nil || !bytes.HasPrefix(raw, body) || len(raw)-len(body) < 64 {
			t.Fatalf("accepted %q but its fields re-encode differently", st.Text)
		}
	})
}

func TestAdmissionKinds(t *testing.T) {
	k, n := testKey(t, 1), testKey(t, 2)
	_, rev, _ := SignRevocation(k, t0, "")
	st, err := ParseAdmission(rev)
	if err != nil {
		t.Fatal(err)
	}
	env, err := AdmissionEnvelope(n, st)
	if err != nil || env.Kind != GossipKindRevoke {
		t.Fatalf("envelope %+v, %v", env, err)
	}
	var got []AdmissionStatement
	kinds := AdmissionKinds(func(s AdmissionStatement) { got = append(got, s) })
	if err := kinds[GossipKindRevoke].Validate(env); err != nil {
		t.Fatal(err)
	}
	kinds[GossipKindRevoke].Accept(env)
	if len(got) != 1 || got[0].Revocation.Key != k.Public() {
		t.Fatalf("accepted %+v", got)
	}
	// A revocation carried under the rotation kind is refused.
	wrong := env
	wrong.Kind = GossipKindRotate
	if err := kinds[GossipKindRotate].Validate(wrong); !errors.Is(err, ErrMalformed) {
		t.Fatalf("kind mismatch: %v", err)
	}
	// So is a body with trailing whitespace: one statement, one encoding.
	padded := env
	padded.Body = append([]byte(rev), ' ')
	if err := kinds[GossipKindRevoke].Validate(padded); err == nil {
		t.Fatal("accepted a non-canonical body")
	}
}
