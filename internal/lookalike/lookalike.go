// Package lookalike knows the letters of other scripts that render like basic
// Latin ones, so that a word spelled with them reads as what it looks like:
// the inbound screen folds them in words that mix scripts, and the outbound
// sanitizer folds them where it looks for the node's canaries.
package lookalike

// Letter maps a letter that renders like a basic Latin letter to that letter,
// lower case: the Cyrillic, Greek, Armenian and Cherokee homoglyphs of
// Unicode's confusables list that attackers use, and Latin small capitals
// and IPA letters. Other runes, ASCII included, report false.
func Letter(r rune) (rune, bool) {
	switch r {
	// Cyrillic
	case 'а', 'А':
		return 'a', true
	case 'в', 'В':
		return 'b', true
	case 'с', 'С', 'ϲ', 'Ϲ':
		return 'c', true
	case 'ԁ', 'Ԁ':
		return 'd', true
	case 'е', 'Е', 'ё', 'Ё':
		return 'e', true
	case 'һ', 'Һ', 'Н', 'н':
		return 'h', true
	case 'і', 'І', 'ї', 'Ї', 'Ӏ', 'ӏ':
		return 'i', true
	case 'ј', 'Ј', 'ϳ':
		return 'j', true
	case 'к', 'К':
		return 'k', true
	case 'м', 'М':
		return 'm', true
	case 'о', 'О':
		return 'o', true
	case 'р', 'Р':
		return 'p', true
	case 'ԛ', 'Ԛ':
		return 'q', true
	case 'ѕ', 'Ѕ':
		return 's', true
	case 'т', 'Т':
		return 't', true
	case 'у', 'У', 'ү', 'Ү':
		return 'y', true
	case 'ԝ', 'Ԝ':
		return 'w', true
	case 'х', 'Х':
		return 'x', true
	case 'ԍ':
		return 'g', true
	// Greek
	case 'α', 'Α':
		return 'a', true
	case 'Β', 'β':
		return 'b', true
	case 'ε', 'Ε':
		return 'e', true
	case 'Η':
		return 'h', true
	case 'ι', 'Ι':
		return 'i', true
	case 'κ', 'Κ':
		return 'k', true
	case 'Μ':
		return 'm', true
	case 'Ν':
		return 'n', true
	case 'ο', 'Ο', 'σ':
		return 'o', true
	case 'ρ', 'Ρ':
		return 'p', true
	case 'τ', 'Τ':
		return 't', true
	case 'υ', 'Υ', 'γ':
		return 'y', true
	case 'ν':
		return 'v', true
	case 'χ', 'Χ':
		return 'x', true
	case 'Ζ':
		return 'z', true
	// Armenian
	case 'օ', 'Օ':
		return 'o', true
	case 'ս', 'Ս':
		return 'u', true
	case 'ո':
		return 'n', true
	case 'հ':
		return 'h', true
	case 'ց':
		return 'g', true
	case 'զ':
		return 'q', true
	// Cherokee capitals
	case 'Ꭺ':
		return 'a', true
	case 'Ᏼ':
		return 'b', true
	case 'Ꮯ':
		return 'c', true
	case 'Ꭼ':
		return 'e', true
	case 'Ꮋ':
		return 'h', true
	case 'Ꮖ':
		return 'i', true
	case 'Ꮶ':
		return 'k', true
	case 'Ꮇ':
		return 'm', true
	case 'Ꮲ':
		return 'p', true
	case 'Ꮪ':
		return 's', true
	case 'Ꭲ':
		return 't', true
	case 'Ꮃ':
		return 'w', true
	// Latin small capitals and IPA letters that pass for plain ones
	case 'ᴀ', 'ɑ':
		return 'a', true
	case 'ʙ':
		return 'b', true
	case 'ᴄ':
		return 'c', true
	case 'ᴅ':
		return 'd', true
	case 'ᴇ':
		return 'e', true
	case 'ꜰ':
		return 'f', true
	case 'ɢ', 'ɡ', 'Ɡ':
		return 'g', true
	case 'ʜ':
		return 'h', true
	case 'ɪ', 'ı', 'Ɪ':
		return 'i', true
	case 'ᴊ', 'ȷ':
		return 'j', true
	case 'ᴋ':
		return 'k', true
	case 'ʟ':
		return 'l', true
	case 'ᴍ':
		return 'm', true
	case 'ɴ':
		return 'n', true
	case 'ᴏ':
		return 'o', true
	case 'ᴘ':
		return 'p', true
	case 'ʀ':
		return 'r', true
	case 'ꜱ':
		return 's', true
	case 'ᴛ':
		return 't', true
	case 'ᴜ':
		return 'u', true
	case 'ᴠ':
		return 'v', true
	case 'ᴡ':
		return 'w', true
	case 'ʏ':
		return 'y', true
	case 'ᴢ':
		return 'z', true
	}
	return 0, false
}
