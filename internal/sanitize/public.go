package sanitize

import "bytes"

// didKeyPrefix starts a peer ID: "did:key:z" and a base58btc public key.
var didKeyPrefix = []byte("did:key:z")

// dropPublicIDs removes secret findings that lie inside a did:key. A peer ID is
// a public key, which is public material (a negative in the corpus's terms),
// yet its 48 high-entropy characters look like a token to generic rules; peer
// IDs travel in nearly every federation payload, so flagging them would block
// ordinary traffic.
func dropPublicIDs(data []byte, hits []Finding) []Finding {
	if len(hits) == 0 || !bytes.Contains(data, didKeyPrefix) {
		return hits
	}
	var spans [][2]int
	for off := 0; ; {
		i := bytes.Index(data[off:], didKeyPrefix)
		if i < 0 {
			break
		}
		start := off + i
		end := start + len(didKeyPrefix)
		for end < len(data) && isBase58(data[end]) {
			end++
		}
		spans = append(spans, [2]int{start, end})
		off = end
	}
	out := hits[:0]
	for _, h := range hits {
		if h.Category.Class() == ClassSecret && inside(spans, h.Start, h.End) {
			continue
		}
		out = append(out, h)
	}
	return out
}

func inside(spans [][2]int, start, end int) bool {
	for _, s := range spans {
		if start >= s[0] && end <= s[1] {
			return true
		}
	}
	return false
}

func isBase58(c byte) bool {
	switch {
	case c >= '1' && c <= '9', c >= 'A' && c <= 'H', c >= 'J' && c <= 'N', c >= 'P' && c <= 'Z',
		c >= 'a' && c <= 'k', c >= 'm' && c <= 'z':
		return true
	}
	return false
}
