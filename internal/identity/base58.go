package identity

import (
	"errors"
	"math/big"
)

const b58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

var b58Index = func() (idx [256]int8) {
	for i := range idx {
		idx[i] = -1
	}
	for i := 0; i < len(b58Alphabet); i++ {
		idx[b58Alphabet[i]] = int8(i)
	}
	return idx
}()

func base58Encode(b []byte) string {
	zeros := 0
	for zeros < len(b) && b[zeros] == 0 {
		zeros++
	}
	// Base-58 digits, most significant first; log(256)/log(58) < 1.38.
	digits := make([]byte, (len(b)-zeros)*138/100+1)
	n := 0 // digits in use, at the end of the slice
	for _, c := range b[zeros:] {
		carry := int(c)
		for i := len(digits) - 1; i >= len(digits)-n || carry != 0; i-- {
			if i >= len(digits)-n {
				carry += 256 * int(digits[i])
			}
			digits[i] = byte(carry % 58)
			carry /= 58
			if i < len(digits)-n {
				n = len(digits) - i
			}
		}
	}
	out := make([]byte, 0, zeros+n)
	for range zeros {
		out = append(out, '1')
	}
	for _, d := range digits[len(digits)-n:] {
		out = append(out, b58Alphabet[d])
	}
	return string(out)
}

func base58Decode(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("empty base58 string")
	}
	n := new(big.Int)
	base := big.NewInt(58)
	zeros := 0
	for zeros < len(s) && s[zeros] == '1' {
		zeros++
	}
	for i := 0; i < len(s); i++ {
		d := b58Index[s[i]]
		if d < 0 {
			return nil, errors.New("character outside the base58btc alphabet")
		}
		n.Mul(n, base)
		n.Add(n, big.NewInt(int64(d)))
	}
	return append(make([]byte, zeros), n.Bytes()...), nil
}
