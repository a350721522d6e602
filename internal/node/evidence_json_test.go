package node

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/screen"
	"github.com/treaty-dev/treaty/internal/transport"
	"github.com/treaty-dev/treaty/internal/wire"
)

// randomText draws strings that exercise every escaping rule of
// encoding/json: quotes, backslashes, controls, HTML characters, U+2028,
// invalid UTF-8 and plain base64.
func randomText(rng *rand.Rand) string {
	pieces := []string{"", "a", "Zz09+/=", "\"", "\\", "\n", "\x00", "\x1f", "\x7f", "<", ">", "&", "\u2028", "\u2029", "é", "\xff", "\xe2\x80", "sha-256=:", ":", " ", "did:key:z6Mk"}
	var b strings.Builder
	for range rng.Intn(8) {
		b.WriteString(pieces[rng.Intn(len(pieces))])
	}
	return b.String()
}

// The hand-written evidence JSON is byte for byte what json.Marshal gives,
// so the audit log holds the same bytes as before.
func TestRequestEvidenceJSONIsMarshal(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	nums := []int64{0, 1, -1, 1 << 40, -1 << 62, time.Now().Unix()}
	for range 20000 {
		re := requestEvidence{
			Base: randomText(rng), Path: randomText(rng), Digest: randomText(rng),
			Created: nums[rng.Intn(len(nums))], Expires: nums[rng.Intn(len(nums))],
			Nonce: randomText(rng), Signature: randomText(rng),
		}
		want, err := json.Marshal(re)
		if err != nil {
			t.Fatal(err)
		}
		if got := re.appendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("appendJSON(%+v)\n got %s\nwant %s", re, got, want)
		}
	}
}

// appendPeerHost appends the host url.Parse reads, lower-cased, and fails
// where it fails.
func TestPeerHostIsURLParse(t *testing.T) {
	k, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	peer := k.Public()
	paths := []string{"", "/", "/v1/call/echo", "v1/call/echo", "//x/y", "/a?b", "/a#b", "/%zz", "/%41", "/a b", "/\x00", "/\x7f",
		"/é", "/a@b", "/a:1", "/[::1]", "/v1/call/a.b-c_d~e", "/..//../", "/a;b", "/%", "?", "#", "@", "/a\\b"}
	rng := rand.New(rand.NewSource(2))
	for range 5000 {
		paths = append(paths, "/"+randomText(rng)+randomText(rng))
	}
	for _, p := range paths {
		want, werr := url.Parse(transport.PeerURL(peer, p))
		got, ok := appendPeerHost([]byte("x"), peer, p)
		if (werr == nil) != ok || ok && string(got) != "x"+strings.ToLower(want.Host) {
			t.Fatalf("appendPeerHost(%q) = %q, %v; url.Parse gives %v, %v", p, got, ok, want, werr)
		}
	}
}

// call.completed's report and evidence, written by hand, are json.Marshal's
// bytes for the same values (and nil where it fails).
func TestCompletedJSONIsMarshal(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	scores := []float64{0, 0.5, 1, 1e-7, 2e21, math.NaN(), math.Inf(-1)}
	for i := range 3000 {
		v := &screen.Verdict{Action: screen.Action(randomText(rng)), Score: rng.Float64()}
		if i < len(scores) {
			v.Score = scores[i]
		}
		if rng.Intn(3) > 0 {
			v.Reasons = []string{}
			for range rng.Intn(4) {
				v.Reasons = append(v.Reasons, randomText(rng))
			}
		}
		want, _ := json.Marshal(map[string]any{"screen": v})
		if got := screenReport(v); !bytes.Equal(got, want) {
			t.Fatalf("screenReport(%+v) = %s, json.Marshal gives %s", v, got, want)
		}

		var ce completedEvidence
		if rng.Intn(4) > 0 {
			ce.Response = &responseEvidence{Status: rng.Intn(1000), ContentDigest: randomText(rng), Signature: randomText(rng)}
			if rng.Intn(2) == 0 {
				ce.Response.SignatureInput = randomText(rng)
			}
			if rng.Intn(2) == 0 {
				ce.Response.Created = rng.Int63() - rng.Int63()
			}
		}
		if rng.Intn(4) > 0 {
			ce.PeerAudit = &peerAuditEvidence{Index: rng.Uint64()}
			if rng.Intn(2) == 0 {
				ce.PeerAudit.Checkpoint = randomText(rng)
			} else {
				ce.PeerAudit.Size, ce.PeerAudit.Root, ce.PeerAudit.Sig = uint64(rng.Intn(3))*rng.Uint64(), randomText(rng), randomText(rng)
			}
		}
		if rng.Intn(50) == 0 {
			ce.Receipt = &wire.Receipt{RequestBase: randomText(rng), Status: 200}
		}
		want, _ = json.Marshal(ce)
		if got := ce.marshal(); !bytes.Equal(got, want) {
			t.Fatalf("completedEvidence.marshal() = %s, json.Marshal gives %s", got, want)
		}
	}
}
