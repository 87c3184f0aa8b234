package billing

// The text encoding of the PDF rendering: fpdf's core fonts (Helvetica) draw Windows-1252 bytes,
// so text is converted here, with ASCII stand-ins where Windows-1252 has no character.

import "strings"

// pdfText converts UTF-8 text to the Windows-1252 bytes fpdf's core fonts draw. Characters of
// Windows-1252 map to their byte; Latin letters outside it lose their diacritics; a few symbols
// get ASCII stand-ins; tabs and line breaks become spaces; combining marks and other control
// characters are dropped; anything else becomes "?". See WritePDF.
func pdfText(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0 && cp1252Byte(r) == 0):
			// Control characters: dropped.
		case r < 0x80:
			b.WriteByte(byte(r))
		case r >= 0x300 && r <= 0x36f: // combining diacritical marks
		default:
			if c := cp1252Byte(r); c != 0 {
				b.WriteByte(c)
			} else if t, ok := pdfTranslit(r); ok {
				b.WriteString(t)
			} else {
				b.WriteByte('?')
			}
		}
	}
	return b.String()
}

// cp1252High maps bytes 0x80-0x9F of Windows-1252 to their characters (0 where undefined); bytes
// 0xA0-0xFF are the Latin-1 characters of the same value.
var cp1252High = [32]rune{
	0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0,
	0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
}

// cp1252Byte returns the Windows-1252 byte of r (r >= 0x80), or 0 when it has none.
func cp1252Byte(r rune) byte {
	if r >= 0xa0 && r <= 0xff {
		return byte(r)
	}
	for i, c := range cp1252High {
		if c == r && c != 0 {
			return byte(0x80 + i)
		}
	}
	return 0
}

// latinExtendedA gives, for U+0100-U+017F, the ASCII letter each character is written with once
// its diacritic is dropped ("Ł" L, "ő" o, "ı" i).
const latinExtendedA = "AaAaAaCcCcCcCcDdDdEeEeEeEeEeGgGgGgGgHhHhIiIiIiIiIi" +
	"IiJjKkkLlLlLlLlLlNnNnNnnNnOoOoOoOoRrRrRrSsSsSsSsTtTtTtUuUuUuUuUuUuWwYyYZzZzZzs"

// pdfTranslit returns an ASCII stand-in for r, when there is one.
func pdfTranslit(r rune) (string, bool) {
	switch {
	case r == 0x132:
		return "IJ", true
	case r == 0x133:
		return "ij", true
	case r >= 0x100 && r <= 0x17f:
		return latinExtendedA[r-0x100 : r-0x100+1], true
	case r >= 0x218 && r <= 0x21b: // Ș ș Ț ț (Romanian)
		return string("SsTt"[r-0x218]), true
	}
	switch r {
	case 0x2010, 0x2011, 0x2012, 0x2212: // hyphens, figure dash, minus sign
		return "-", true
	case 0x2002, 0x2003, 0x2007, 0x2008, 0x2009, 0x200a, 0x202f, 0x205f, 0x3000:
		return " ", true
	case 0x200b, 0x200c, 0x200d, 0x2060, 0xfeff: // zero-width characters
		return "", true
	case 0x2032:
		return "'", true
	case 0x2033:
		return "\"", true
	case 0x2192:
		return "->", true
	case 0x2190:
		return "<-", true
	case 0x2264:
		return "<=", true
	case 0x2265:
		return ">=", true
	case 0x2260:
		return "!=", true
	case 0x2248:
		return "~", true
	case 0x2215:
		return "/", true
	}
	return "", false
}
