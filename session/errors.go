package session

import (
	"errors"
	"strconv"
	"strings"

	"github.com/authkit-go/authkit/auth"
)

// ErrInsecureHTTP means a service URL uses plain http:// to a host that is
// not a loopback address, so its credentials would cross the network in
// clear text. Use https://, or, only on a network you trust completely, set
// [Config.DangerousAllowInsecureHTTP]. New wraps it together with
// [auth.ErrInvalidConfig].
var ErrInsecureHTTP = errors.New("session: refusing to send credentials over plain http:// to a host that is not a loopback address; use https:// (or, on a trusted network only, Config.DangerousAllowInsecureHTTP)")

func configError(format string, args ...any) error {
	return auth.ConfigError("session: "+format, args...)
}

func insecureError(field string) error {
	return auth.ConfigError("%s: %w", field, ErrInsecureHTTP)
}

// CredentialError means the handler could not provide the credentials of the
// service a request was addressed to, so the request was not sent. Err is
// the handler's error; errors.Is(err, auth.ErrLoginRequired) tells that a
// person has to log in (call the handler's Authenticate). It is never
// retried.
type CredentialError struct {
	// Service is "hub" or "access manager" (the values of auth.Service).
	Service string
	// Err is the handler's error.
	Err error
}

// Error names the service and the handler's error.
func (e *CredentialError) Error() string {
	return "session: no credentials for the " + e.Service + ": " + e.Err.Error()
}

// Unwrap returns the handler's error.
func (e *CredentialError) Unwrap() error { return e.Err }

// StatusError is returned by [Session.Do] when the last allowed attempt
// still got a status worth retrying (408, 429, 5xx by default): after the
// retries ran out, or at once for a request that may not be retried. The
// response body has been read (up to a limit) and closed.
type StatusError struct {
	// Method is the request's method.
	Method string
	// URL is the request's URL, redacted by [RedactURL].
	URL string
	// Service is "hub", "access manager" or "none".
	Service string
	// StatusCode is the last status received.
	StatusCode int
	// Attempts counts the attempts made.
	Attempts int
	// Excerpt is the start of the last response body, with anything that
	// looks like a credential removed.
	Excerpt string
}

// Error renders the request, the status, the attempts and the excerpt.
func (e *StatusError) Error() string {
	var b strings.Builder
	b.WriteString("session: ")
	writeRequest(&b, e.Method, e.URL)
	b.WriteString("HTTP ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if t := httpStatusText(e.StatusCode); t != "" {
		b.WriteString(" " + t)
	}
	writeAttempts(&b, e.Attempts)
	if e.Excerpt != "" {
		b.WriteString(": ")
		b.WriteString(strconv.Quote(e.Excerpt))
	}
	return b.String()
}

// RequestError is returned by [Session.Do] when no usable response arrived:
// a network error on the last allowed attempt, a cancelled ctx, a
// [*CredentialError]. errors.Is and errors.As see through it to Err.
type RequestError struct {
	// Method is the request's method.
	Method string
	// URL is the request's URL, redacted by [RedactURL].
	URL string
	// Service is "hub", "access manager" or "none".
	Service string
	// Attempts counts the attempts made; 0 when unknown.
	Attempts int
	// Err is the cause. It never holds the request's URL.
	Err error
}

// Error renders the request, the cause and the attempts.
func (e *RequestError) Error() string {
	var b strings.Builder
	b.WriteString("session: ")
	writeRequest(&b, e.Method, e.URL)
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("request failed")
	}
	writeAttempts(&b, e.Attempts)
	return b.String()
}

// Unwrap returns the cause.
func (e *RequestError) Unwrap() error { return e.Err }

func writeRequest(b *strings.Builder, method, u string) {
	if method == "" && u == "" {
		return
	}
	b.WriteString(method)
	b.WriteString(" ")
	b.WriteString(u)
	b.WriteString(": ")
}

func writeAttempts(b *strings.Builder, n int) {
	switch {
	case n == 1:
		b.WriteString(" (1 attempt)")
	case n > 1:
		b.WriteString(" (" + strconv.Itoa(n) + " attempts)")
	}
}
