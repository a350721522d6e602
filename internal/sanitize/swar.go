package sanitize

import "encoding/binary"

// nextBreakByte is the first index from i of '\n' or '\\' in d, or len(d):
// eight bytes at a time while none is either. (v-ones)&^v&high is non-zero
// exactly when v has a zero byte, so the skip never passes one.
func nextBreakByte(d []byte, i int) int {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	for i+8 <= len(d) {
		x := binary.LittleEndian.Uint64(d[i:])
		nl, bs := x^(ones*'\n'), x^(ones*'\\')
		if ((nl-ones)&^nl|(bs-ones)&^bs)&high != 0 {
			break
		}
		i += 8
	}
	for i < len(d) && d[i] != '\n' && d[i] != '\\' {
		i++
	}
	return i
}
