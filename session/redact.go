package session

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// redactedValue replaces secrets in URLs, excerpts and logs.
const redactedValue = "REDACTED"

// secretWords mark a query parameter, form field or JSON key whose value may
// be a secret. Matching is by substring, case-insensitively: "api_key",
// "client_secret", "access_token", "X-Amz-Signature", "code" all match.
var secretWords = []string{
	"token", "secret", "pass", "pwd", "key", "sig", "auth", "code",
	"credential", "session", "assertion", "jwt", "bearer", "otp", "cookie", "ticket",
}

// secretName reports whether a parameter named name may carry a secret.
func secretName(name string) bool {
	n := strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// RedactURL returns u as a string fit for logs and errors: without user
// information and fragment, with the value of every query parameter whose
// name looks secret (token, secret, password, key, signature, code, ...)
// replaced by "REDACTED". Other parameters are kept as they were.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := *u
	r.User = nil
	r.Fragment, r.RawFragment = "", ""
	r.RawQuery = redactQuery(u.RawQuery)
	if r.Opaque != "" {
		r.Opaque = redactedValue
	}
	return r.String()
}

// redactQuery replaces the values of secret-looking parameters of a raw
// query, keeping everything else byte for byte.
func redactQuery(q string) string {
	if q == "" {
		return ""
	}
	var b strings.Builder
	for i, part := range strings.Split(q, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		name, _, hasValue := strings.Cut(part, "=")
		dec, err := url.QueryUnescape(name)
		if err != nil {
			dec = name
		}
		if !secretName(dec) {
			b.WriteString(part)
			continue
		}
		b.WriteString(name)
		if hasValue {
			b.WriteString("=" + redactedValue)
		}
	}
	return b.String()
}

// redactString redacts a URL given as a string (as *url.Error holds it).
func redactString(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return RedactURL(u)
}

var (
	jwtPattern    = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}(\.[A-Za-z0-9_-]*)?`)
	bearerPattern = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+`)
	pairPattern   = regexp.MustCompile(`(?i)([A-Za-z0-9_.-]*(?:token|secret|pass|pwd|key|sig|auth|code|credential|assertion|jwt|otp|cookie)[A-Za-z0-9_.-]*["']?\s*[:=]\s*["']?)([^"'&\s,;}<]+)`)
)

// nonSecretHeaders are request headers whose values are not redacted from
// excerpts: everything else the request carried is treated as a secret.
var nonSecretHeaders = map[string]bool{
	"Accept": true, "Accept-Encoding": true, "Accept-Language": true, "Content-Type": true,
	"Content-Length": true, "User-Agent": true, "Connection": true, "Host": true,
}

// excerptLimit is the length of StatusError.Excerpt; excerptRead is how much
// of the body is read to find secrets around it.
const (
	excerptLimit = 256
	excerptRead  = 4096
)

// sanitizeExcerpt removes from body every value of the headers sent (except
// a few harmless ones), anything that looks like a bearer token, a JWT or a
// secret-named field, and returns at most excerptLimit bytes of valid UTF-8.
func sanitizeExcerpt(body []byte, sent http.Header) string {
	s := string(body)
	for k, vv := range sent {
		if nonSecretHeaders[k] {
			continue
		}
		for _, v := range vv {
			s = redactValue(s, v)
			if _, last, ok := strings.Cut(v, " "); ok {
				s = redactValue(s, last)
			}
		}
	}
	s = jwtPattern.ReplaceAllString(s, redactedValue)
	s = bearerPattern.ReplaceAllString(s, "$1 "+redactedValue)
	s = pairPattern.ReplaceAllString(s, "${1}"+redactedValue)
	if len(s) > excerptLimit {
		s = s[:excerptLimit]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return strings.ToValidUTF8(strings.TrimSpace(s), "?")
}

func redactValue(s, v string) string {
	v = strings.TrimSpace(v)
	if len(v) < 6 {
		return s // too short to be a secret worth hiding, too likely to be a word
	}
	return strings.ReplaceAll(s, v, redactedValue)
}

func httpStatusText(code int) string { return http.StatusText(code) }
