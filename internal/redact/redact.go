// Package redact removes secrets from text that came from elsewhere:
// identity providers echo request bodies into error descriptions, 500 pages
// and HTML. It is the one place authkit cleans such text: the token client
// scrubs every value it sent, and everything keeps only a short,
// printable excerpt with token-like runs removed.
package redact

import (
	"encoding/base64"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Mark replaces what was removed.
const Mark = "[redacted]"

// ExcerptSize is the longest excerpt kept.
const ExcerptSize = 160

// Scrubber removes given values, in every encoding a server may echo them
// in, from text. Its zero value removes nothing.
type Scrubber struct {
	needles []string
}

// minScrub is the shortest value scrubbed: shorter ones (a 1-character
// flag) would erase ordinary words. A 6-digit TOTP code is scrubbed.
const minScrub = 4

// Add makes s remove v as sent, form-encoded, path-encoded, in base64 and
// base64url (an HTTP Basic header), and JSON-escaped.
func (s *Scrubber) Add(v string) {
	if len(v) < minScrub {
		return
	}
	for _, n := range []string{
		v,
		url.QueryEscape(v),
		url.PathEscape(v),
		base64.StdEncoding.EncodeToString([]byte(v)),
		base64.RawStdEncoding.EncodeToString([]byte(v)),
		base64.URLEncoding.EncodeToString([]byte(v)),
		base64.RawURLEncoding.EncodeToString([]byte(v)),
		jsonEscape(v),
	} {
		if !containsString(s.needles, n) {
			s.needles = append(s.needles, n)
		}
	}
}

// Scrub returns text without any of the values added, longest first, so
// that an encoding that contains another is removed whole.
func (s *Scrubber) Scrub(text string) string {
	if s == nil || len(s.needles) == 0 {
		return text
	}
	needles := append([]string(nil), s.needles...)
	for i := 1; i < len(needles); i++ { // insertion sort by length, longest first; few entries
		for j := i; j > 0 && len(needles[j]) > len(needles[j-1]); j-- {
			needles[j], needles[j-1] = needles[j-1], needles[j]
		}
	}
	for _, n := range needles {
		text = strings.ReplaceAll(text, n, Mark)
	}
	return text
}

// Text bounds a provider-supplied text to n bytes, scrubs it, removes
// control characters and token-like runs, and collapses white space.
func Text(text string, n int, s *Scrubber) string {
	text = s.Scrub(text)
	if len(text) > n {
		text = text[:n]
	}
	return sanitize(strings.ToValidUTF8(text, ""))
}

// Excerpt returns a short, printable prefix of body, scrubbed, with every
// token-like run (20 or more base64url, base64 or JWT characters with a
// digit or mixed case, or any such run of 40 or more) replaced by Mark, so
// that a misbehaving server cannot make an error carry a secret.
func Excerpt(body []byte, s *Scrubber) string {
	b := body
	if len(b) > 4*ExcerptSize {
		b = b[:4*ExcerptSize]
	}
	text := sanitize(s.Scrub(strings.ToValidUTF8(string(b), "")))
	if utf8.RuneCountInString(text) > ExcerptSize {
		r := []rune(text)
		text = string(r[:ExcerptSize]) + "…"
	}
	return text
}

var tokenLike = regexp.MustCompile(`[A-Za-z0-9+/_=.~-]{20,}`)

func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return ' '
		}
		return r
	}, s)
	s = tokenLike.ReplaceAllStringFunc(s, func(run string) string {
		// Words such as "authorization_pending" stay; runs with digits or
		// mixed case are what tokens, codes and secrets look like.
		if len(run) >= 40 || strings.ContainsAny(run, "0123456789") || strings.ToLower(run) != run && strings.ToUpper(run) != run {
			return Mark
		}
		return run
	})
	return strings.Join(strings.Fields(s), " ")
}

func jsonEscape(v string) string {
	var b strings.Builder
	for _, r := range v {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '/':
			b.WriteString(`\/`)
		case r < ' ':
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&0xf])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// URL drops the query, fragment and user info of a URL, which may carry
// secrets: what errors and logs may name.
func URL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	p.RawQuery, p.Fragment, p.User = "", "", nil
	return p.String()
}
