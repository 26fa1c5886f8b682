package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"
)

// Transient marks err as a transient failure, one that the same request may
// not meet again: the engine retries a fetch that fails this way, with
// backoff, for as long as its callers wait (see [IsTransient]). A
// [FetchFunc] uses it for failures of its own that [IsTransient] cannot
// recognise, such as an application callback whose backend is briefly away.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &transientError{err: err}
}

type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// IsTransient reports whether err is a failure worth retrying: a network
// error (refused, reset, timed out, cut short), an HTTP 429 or 5xx answer
// ([*OAuthError] or [*ResponseError]), the OAuth codes
// "temporarily_unavailable" and "server_error", or an error marked with
// [Transient]. Everything else — an OAuth answer such as invalid_grant or
// invalid_client, a malformed 2xx answer, an untrusted certificate, a
// configuration error, context.Canceled — is terminal: retrying cannot help.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var te *transientError
	if errors.As(err, &te) {
		return true
	}
	var oe *OAuthError
	if errors.As(err, &oe) {
		return transientStatus(oe.StatusCode) || oe.Code == "temporarily_unavailable" || oe.Code == "server_error"
	}
	var re *ResponseError
	if errors.As(err, &re) {
		return transientStatus(re.StatusCode)
	}
	// Certificate and TLS record errors do not heal by themselves.
	var (
		unknownCA *x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
		record    tls.RecordHeaderError
		verify    *tls.CertificateVerificationError
	)
	if errors.As(err, &unknownCA) || errors.As(err, &invalid) || errors.As(err, &hostname) ||
		errors.As(err, &record) || errors.As(err, &verify) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, context.DeadlineExceeded)
}

func transientStatus(code int) bool {
	return code == http.StatusTooManyRequests || code >= 500
}

// retryAfter returns the server's Retry-After carried by err, if any.
func retryAfter(err error) time.Duration {
	var oe *OAuthError
	if errors.As(err, &oe) {
		return oe.RetryAfter
	}
	var re *ResponseError
	if errors.As(err, &re) {
		return re.RetryAfter
	}
	return 0
}
