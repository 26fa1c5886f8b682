package jwks

import (
	"errors"
	"fmt"

	"github.com/authkit-go/authkit/auth"
)

// Sentinel errors name categories of failure; test for them with errors.Is.
// Errors that wrap them also wrap their cause (a *url.Error, a net.Error, an
// *auth.ResponseError carrying the HTTP status, context.DeadlineExceeded...),
// and never quote key material or a response body.
var (
	// ErrKeysUnavailable means the key set could not be fetched (network
	// error, timeout, non-2xx answer, unusable body), or the caller stopped
	// waiting for it, and no cached set has the key. It is transient: retry
	// later.
	ErrKeysUnavailable = errors.New("jwks: keys unavailable; retry later")
	// ErrUnknownKey means no key fits the token: the key set was fetched
	// (again, if Config.UnknownKidRefresh allowed) and has no key with the
	// token's "kid" (https://www.rfc-editor.org/rfc/rfc7515#section-4.1.4),
	// or none of that kid fits the token's "alg". Retrying at once does
	// not help; after a key rotation, a retry once UnknownKidRefresh has
	// passed may.
	ErrUnknownKey = errors.New("jwks: no key for the token")
	// errClosed is returned after Close. It also matches auth.ErrClosed.
	errClosed = fmt.Errorf("jwks: key set closed: %w", auth.ErrClosed)
)

// errInsecureRedirect refuses a redirect from https to another scheme.
var errInsecureRedirect = errors.New("jwks: refused a redirect from https to http")

// errTooManyRedirects stops a redirect chain.
var errTooManyRedirects = errors.New("jwks: stopped after 10 redirects")
