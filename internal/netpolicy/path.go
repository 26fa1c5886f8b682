package netpolicy

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// UnderPath reports whether a request path lies under base however the
// server resolves it, so that credentials scoped to base may be sent.
// escapedPath is the path as sent on the wire (url.URL.EscapedPath; ""
// means "/"). base is a clean path in the same escaped form, such as "/api"
// or "/api/"; "" and "/" mean every path.
//
// The path must start with base literally, followed by "/" or nothing:
// "/api/x" and "/api" are under "/api", "/apix", "/api;p/x", "/%61pi/x" and
// "/api\x" are not. The rest is percent-decoded once and judged the way the
// most lenient server would read it: '\' and decoded '/' and '\' separate
// segments, ";params" are removed from every segment (Tomcat and Jetty
// path parameters). The answer is false when the rest then contains
//
//   - a ".." segment ("/api/../admin", "/api/..;/admin", "/api/..%2fadmin",
//     "/api/%2e%2e/admin", "/api/.%2E/admin", "/api/..%5cadmin"), even one
//     that would stay inside base: servers disagree on which characters
//     separate segments, so whether it stays inside depends on the server,
//     and a client removes dot segments before sending
//     (https://www.rfc-editor.org/rfc/rfc3986#section-5.2.4);
//   - a double-encoded '.', '/', '\', ';' or '%' ("%252e"), which a second
//     decoding layer would turn into one of the above;
//   - a control character (raw or encoded, NUL included), a malformed
//     percent escape, or bytes that are not UTF-8 once decoded (overlong
//     forms such as "%c0%ae" were once read as '.').
func UnderPath(escapedPath, base string) bool {
	base = strings.TrimSuffix(base, "/")
	if !cleanBase(base) {
		return false
	}
	p := escapedPath
	if p == "" {
		p = "/"
	}
	if !strings.HasPrefix(p, base) || len(p) > len(base) && p[len(base)] != '/' {
		return false
	}
	if plain(p[len(base):]) {
		return true // nothing to decode, no dot segment, no separator but '/'
	}
	rest, ok := decode(p[len(base):])
	if !ok || !utf8.ValidString(rest) {
		return false
	}
	for seg := range strings.FieldsFuncSeq(rest, func(r rune) bool { return r == '/' || r == '\\' }) {
		seg, _, _ = strings.Cut(seg, ";")
		if seg == ".." {
			return false
		}
	}
	return true
}

// plain reports whether s holds only printable ASCII other than '%', '.',
// '\', ';', '?' and '#': such a path means the same to every server, and
// UnderPath accepts it without decoding (and without allocating).
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainByte[s[i]] {
			return false
		}
	}
	return true
}

// plainByte holds the bytes plain accepts.
var plainByte = func() (t [256]bool) {
	for c := 0x21; c < 0x7f; c++ {
		t[c] = strings.IndexByte(`%.\;?#`, byte(c)) < 0
	}
	return t
}()

// decode percent-decodes s once. It fails on '?' or '#' (not part of a
// path), a malformed escape, a control character, and a double-encoded '.',
// '/', '\', ';' or '%'.
func decode(s string) (string, bool) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '?', '#':
			return "", false
		case '%':
			d, ok := unescape(s[i+1:])
			if !ok {
				return "", false
			}
			i += 2
			if d2, ok := unescape(s[i+1:]); d == '%' && ok && strings.IndexByte(`./\;%`, d2) >= 0 {
				return "", false
			}
			c = d
		}
		if c < 0x20 || c == 0x7f {
			return "", false
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

// unescape decodes the two hex digits at the start of s.
func unescape(s string) (byte, bool) {
	if len(s) < 2 {
		return 0, false
	}
	n, err := strconv.ParseUint(s[:2], 16, 8)
	return byte(n), err == nil
}

// cleanBase reports whether base (without its trailing slash) is "" or an
// absolute clean path (no empty, "." or ".." segment) without '\', ';',
// '?', '#' or control characters. It runs for every request and does not
// allocate.
func cleanBase(base string) bool {
	if base == "" {
		return true
	}
	if base[0] != '/' {
		return false
	}
	for seg := range strings.SplitSeq(base[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	for i := 0; i < len(base); i++ {
		if c := base[i]; c < 0x20 || c == 0x7f || strings.IndexByte(`\;?#`, c) >= 0 {
			return false
		}
	}
	return true
}
