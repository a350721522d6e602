package sanitize

// acMatcher finds every occurrence of a set of literal patterns in one pass,
// ASCII case-insensitively. It is an Aho-Corasick automaton compiled to a full
// DFA over byte classes (bytes that occur in no pattern share class 0), so the
// scan loop is one table load per input byte. Immutable after build; safe for
// concurrent use.
type acMatcher struct {
	class  [256]uint8
	nclass int
	// delta[state*nclass+class] is the next state; a negative entry ^s means
	// state s has outputs to report.
	delta   []int32
	outOff  []int32 // per state: outputs are outs[outOff[s]:outOff[s+1]]
	outs    []int32 // pattern indexes
	patLens []int32
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
			if len(nodes[t].out) > 0 {
				t = ^t
			}
			m.delta[s*n+c] = t
		}
	}
	m.outOff[len(nodes)] = int32(len(m.outs))
	return m
}

// scan calls emit(pattern, start) for every occurrence, in order of end
// position. emit must not retain data.
func (m *acMatcher) scan(data []byte, emit func(pat int, start int)) {
	delta, class, nc := m.delta, &m.class, m.nclass
	s := int32(0)
	for i := 0; i < len(data); i++ {
		s = delta[int(s)*nc+int(class[data[i]])]
		if s < 0 {
			s = ^s
			for _, p := range m.outs[m.outOff[s]:m.outOff[s+1]] {
				emit(int(p), i+1-int(m.patLens[p]))
			}
		}
	}
}
