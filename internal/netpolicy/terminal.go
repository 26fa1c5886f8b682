package netpolicy

import (
	"strings"
	"unicode/utf8"
)

// TerminalSafe returns s with every rune a terminal would interpret
// replaced by U+FFFD, for printing an untrusted single-line value such as
// a device user code or a verification URL
// (https://www.rfc-editor.org/rfc/rfc8628#section-3.3). Replaced are:
//
//   - C0 controls U+0000–U+001F, \t, \n and \r included (a "\r" lets the
//     rest overwrite the line), and DEL U+007F;
//   - C1 controls U+0080–U+009F (U+009B is a one-byte CSI);
//   - the bidirectional formatting characters U+061C, U+200E, U+200F,
//     U+202A–U+202E and U+2066–U+2069 (https://www.unicode.org/reports/tr9/),
//     which reorder what is shown, and the line and paragraph separators
//     U+2028 and U+2029;
//   - each byte of invalid UTF-8.
//
// Replacing the introducer (ESC, CSI) neutralises every escape sequence:
// colours, screen clears ("\x1b[2J"), OSC 8 hyperlinks
// ("\x1b]8;;http://evil\x07"), title changes. The remaining bytes of a
// sequence stay visible as plain text, which shows that something was
// removed. U+FFFD is used rather than a visible escape such as "\x1b" so
// that the output cannot be confused with input that spells out "\x1b".
// s itself is returned, without allocating, when it holds none of these
// (and no U+FFFD).
func TerminalSafe(s string) string {
	i := strings.IndexFunc(s, forbidden)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for _, r := range s[i:] {
		if forbidden(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	return b.String()
}

// forbidden reports whether r is replaced by TerminalSafe. Invalid UTF-8
// reaches it as utf8.RuneError.
func forbidden(r rune) bool {
	switch {
	case r < 0x20, 0x7f <= r && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, 0x202a <= r && r <= 0x202e, 0x2066 <= r && r <= 0x2069:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	}
	return r == utf8.RuneError
}
