package sanitize

// acMatcher finds every occurrence of a set of literal patterns in one pass,
// ASCII case-insensitively. It is an Aho-Corasick automaton compiled to a full
// DFA over byte classes (bytes that occur in no pattern share class 0), so the
// scan loop is one table load per input byte. Immutable after build; safe for
// concurrent use.
type acMatcher struct {
	class  [256]uint8
	nclass int
	// delta[row+class] is the next state's row (state*nclass); a negative
	// entry ^row means that state has outputs to report.
	delta   []int32
	outOff  []int32 // per state: outputs are outs[outOff[s]:outOff[s+1]]
	outs    []int32 // pattern indexes
	patLens []int32
	maxLen  int
}

// acHit is one occurrence: pattern index and start offset.
type acHit struct {
	pat, start int32
}

func lowerASCII(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + ('a' - 'A')
	}
	return b
}

// newACMatcher compiles patterns (matched case-insensitively). Empty patterns
// are ignored.
func newACMatcher(patterns []string) *acMatcher {
	m := &acMatcher{patLens: make([]int32, len(patterns))}
	// Byte classes: one per distinct lowercased byte used by a pattern.
	var cls [256]uint8
	n := 1
	for _, p := range patterns {
		for i := 0; i < len(p); i++ {
			b := lowerASCII(p[i])
			if cls[b] == 0 {
				if n == 255 {
					panic("sanitize: too many distinct pattern bytes") // invariant: patterns are ours
				}
				cls[b] = uint8(n)
				n++
			}
		}
	}
	for b := 0; b < 256; b++ {
		m.class[b] = cls[lowerASCII(byte(b))]
	}
	m.nclass = n

	// Trie.
	type node struct {
		next []int32 // per class, -1 if absent
		fail int32
		out  []int32
	}
	newNode := func() node {
		nx := make([]int32, n)
		for i := range nx {
			nx[i] = -1
		}
		return node{next: nx}
	}
	nodes := []node{newNode()}
	for pi, p := range patterns {
		m.patLens[pi] = int32(len(p))
		m.maxLen = max(m.maxLen, len(p))
		if p == "" {
			continue
		}
		s := int32(0)
		for i := 0; i < len(p); i++ {
			c := m.class[p[i]]
			if nodes[s].next[c] < 0 {
				nodes = append(nodes, newNode())
				nodes[s].next[c] = int32(len(nodes) - 1)
			}
			s = nodes[s].next[c]
		}
		nodes[s].out = append(nodes[s].out, int32(pi))
	}
	// BFS for failure links; complete the transition function into a DFA.
	queue := make([]int32, 0, len(nodes))
	for c := 0; c < n; c++ {
		if t := nodes[0].next[c]; t >= 0 {
			nodes[t].fail = 0
			queue = append(queue, t)
		} else {
			nodes[0].next[c] = 0
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		f := nodes[s].fail
		nodes[s].out = append(nodes[s].out, nodes[f].out...)
		for c := 0; c < n; c++ {
			t := nodes[s].next[c]
			if t >= 0 {
				nodes[t].fail = nodes[f].next[c]
				queue = append(queue, t)
			} else {
				nodes[s].next[c] = nodes[f].next[c]
			}
		}
	}
	m.delta = make([]int32, len(nodes)*n)
	m.outOff = make([]int32, len(nodes)+1)
	for s := range nodes {
		m.outOff[s] = int32(len(m.outs))
		m.outs = append(m.outs, nodes[s].out...)
		for c := 0; c < n; c++ {
			t := nodes[s].next[c]
			row := t * int32(n)
			if len(nodes[t].out) > 0 {
				row = ^row
			}
			m.delta[s*n+c] = row
		}
	}
	m.outOff[len(nodes)] = int32(len(m.outs))
	return m
}

// hits appends every occurrence to out in order of end position. Long
// inputs are split in two halves run as two interleaved DFA walks: each walk
// is a chain of dependent table loads, and two chains keep the CPU busy while
// a load is in flight. The second walk starts maxLen-1 bytes early and
// reports only occurrences ending in its half, so none is lost or doubled.
func (m *acMatcher) hits(data []byte, out []acHit) []acHit {
	n := len(data)
	if n < 1024 {
		return m.walk(data, 0, n, 0, out)
	}
	mid := n / 2
	bs := mid - (m.maxLen - 1) // the second walk's start
	delta, class := m.delta, &m.class
	a, b := data[:mid], data[bs:]
	var second []acHit
	ra, rb := int32(0), int32(0)
	for k := range a {
		ra = delta[ra+int32(class[a[k]])]
		rb = delta[rb+int32(class[b[k]])]
		if ra|rb < 0 {
			if ra < 0 {
				ra = ^ra
				out = m.emit(ra, k, 0, 0, out)
			}
			if rb < 0 {
				rb = ^rb
				second = m.emit(rb, k, bs, mid, second)
			}
		}
	}
	out = append(out, second...)
	// The rest of the second half.
	for k := len(a); k < len(b); k++ {
		rb = delta[rb+int32(class[b[k]])]
		if rb < 0 {
			rb = ^rb
			out = m.emit(rb, k, bs, mid, out)
		}
	}
	return out
}

// emit appends the outputs of the state at row, reached at byte k of a walk
// that started at base, when they end after minEnd.
func (m *acMatcher) emit(row int32, k, base, minEnd int, out []acHit) []acHit {
	st := int(row) / m.nclass
	end := base + k + 1
	if end <= minEnd {
		return out
	}
	for _, p := range m.outs[m.outOff[st]:m.outOff[st+1]] {
		out = append(out, acHit{p, int32(end) - m.patLens[p]})
	}
	return out
}

func (m *acMatcher) walk(data []byte, from, to, minEnd int, out []acHit) []acHit {
	delta, class := m.delta, &m.class
	row := int32(0)
	for k, c := range data[from:to] {
		row = delta[row+int32(class[c])]
		if row < 0 {
			row = ^row
			out = m.emit(row, k, from, minEnd, out)
		}
	}
	return out
}

// any reports whether some pattern occurs in data.
func (m *acMatcher) any(data []byte) bool {
	delta, class := m.delta, &m.class
	row := int32(0)
	for _, c := range data {
		row = delta[row+int32(class[c])]
		if row < 0 {
			return true
		}
	}
	return false
}
