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

// minParallelWalk is the shortest input hits cuts in parts: the overlap the
// later walks repeat stays small next to what interleaving saves even on a
// call of a few hundred bytes.
const minParallelWalk = 256

// hits appends every occurrence to out in order of end position. Inputs of
// minParallelWalk bytes or more are cut in four parts walked as four
// interleaved DFA walks: each
// walk is a chain of dependent table loads, and independent chains keep the
// CPU busy while a load is in flight. Every walk but the first starts maxLen-1
// bytes early and reports only occurrences ending in its own part, so none
// is lost or doubled.
func (m *acMatcher) hits(data []byte, out []acHit) []acHit {
	return m.hitsScratch(data, out, nil)
}

// maxPooledHits bounds the hit lists a scanner keeps for reuse.
const maxPooledHits = 4096

// acWays is the number of interleaved walks of acMatcher.hits.
const acWays = 4

// hitsScratch is hits with the later walks' hit lists kept in scratch (when
// not nil) across calls, so a call allocates none.
func (m *acMatcher) hitsScratch(data []byte, out []acHit, scratch *[acWays - 1][]acHit) []acHit {
	const ways = acWays
	n := len(data)
	if n < minParallelWalk || n/ways < m.maxLen {
		// Short input, or parts shorter than a pattern: a later walk would
		// start before the data.
		return m.walk(data, 0, n, 0, out)
	}
	var bounds [ways + 1]int
	for w := 0; w <= ways; w++ {
		bounds[w] = n * w / ways
	}
	var starts [ways]int
	for w := 1; w < ways; w++ {
		starts[w] = bounds[w] - (m.maxLen - 1)
	}
	// Walk w covers data[starts[w]:bounds[w+1]]; the first has the shortest
	// span (no overlap), so the common length is that of walk 0.
	common := bounds[1]
	var bufs [ways - 1][]acHit
	if scratch != nil {
		for w := range bufs {
			bufs[w] = scratch[w][:0]
		}
	}
	delta, class := m.delta, &m.class
	d0, d1, d2, d3 := data[:common], data[starts[1]:], data[starts[2]:], data[starts[3]:]
	d1, d2, d3 = d1[:common], d2[:common], d3[:common]
	var r0, r1, r2, r3 int32
	for k := range d0 {
		r0 = delta[r0+int32(class[d0[k]])]
		r1 = delta[r1+int32(class[d1[k]])]
		r2 = delta[r2+int32(class[d2[k]])]
		r3 = delta[r3+int32(class[d3[k]])]
		if r0|r1|r2|r3 < 0 {
			if r0 < 0 {
				r0 = ^r0
				out = m.emit(r0, k, 0, 0, out)
			}
			if r1 < 0 {
				r1 = ^r1
				bufs[0] = m.emit(r1, k, starts[1], bounds[1], bufs[0])
			}
			if r2 < 0 {
				r2 = ^r2
				bufs[1] = m.emit(r2, k, starts[2], bounds[2], bufs[1])
			}
			if r3 < 0 {
				r3 = ^r3
				bufs[2] = m.emit(r3, k, starts[3], bounds[3], bufs[2])
			}
		}
	}
	// Finish walks 1..3 (each longer than walk 0 by the overlap, and by
	// rounding), in order, each from the state it reached.
	rows := [ways - 1]int32{r1, r2, r3}
	for w := 1; w < ways; w++ {
		out = append(out, bufs[w-1]...)
		row := rows[w-1]
		for k := starts[w] + common; k < bounds[w+1]; k++ {
			row = delta[row+int32(class[data[k]])]
			if row < 0 {
				row = ^row
				out = m.emit(row, k-starts[w], starts[w], bounds[w], out)
			}
		}
	}
	if scratch != nil {
		for w := range bufs {
			if cap(bufs[w]) <= maxPooledHits { // a huge input's lists are not kept
				scratch[w] = bufs[w][:0]
			}
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
