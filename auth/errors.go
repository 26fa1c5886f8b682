package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors name categories of failure; test for them with errors.Is.
var (
	// ErrLoginRequired means no valid credential can be had without a
	// person: the refresh token was rejected or is missing, and the handler
	// may not start an interactive login on its own. Call Authenticate.
	ErrLoginRequired = errors.New("auth: login required; call Authenticate to log in again")
	// ErrTokenExpired means the token expired and no new one could be had.
	ErrTokenExpired = errors.New("auth: token expired")
	// ErrInvalidGrant is the OAuth "invalid_grant" answer: the refresh
	// token, code or password was rejected
	// (https://www.rfc-editor.org/rfc/rfc6749#section-5.2).
	ErrInvalidGrant = errors.New("auth: invalid grant")
	// ErrAccessDenied is the OAuth "access_denied" answer: in the device
	// and browser logins, the person refused
	// (https://www.rfc-editor.org/rfc/rfc8628#section-3.5); some providers
	// also answer it for a wrong password or a client not allowed a grant.
	ErrAccessDenied = errors.New("auth: access denied")
	// ErrInvalidClient is the OAuth "invalid_client" answer: the client id
	// is unknown or its secret or authentication method is wrong
	// (https://www.rfc-editor.org/rfc/rfc6749#section-5.2). Check ClientID,
	// ClientSecret and AuthStyle.
	ErrInvalidClient = errors.New("auth: invalid client")
	// ErrDeviceCodeExpired is the device flow's "expired_token": the user
	// did not approve in time (https://www.rfc-editor.org/rfc/rfc8628#section-3.5).
	ErrDeviceCodeExpired = errors.New("auth: device code expired before it was approved")
	// ErrNotRevoked means a logout removed the tokens locally but the
	// provider did not confirm their revocation: it may still accept them
	// until they expire.
	ErrNotRevoked = errors.New("auth: logged out here, but the provider did not confirm the revocation and may still accept the tokens until they expire")
	// ErrClosed is returned by an engine or handler after Close.
	ErrClosed = errors.New("auth: closed")
	// ErrInvalidConfig is wrapped by every configuration error.
	ErrInvalidConfig = errors.New("auth: invalid configuration")
	// ErrMalformedToken is wrapped when a token or JWT cannot be parsed.
	ErrMalformedToken = errors.New("auth: malformed token")
	// ErrUnsupportedTokenType means the provider issued a token of a type
	// other than Bearer, which a client must not use without understanding
	// it (https://www.rfc-editor.org/rfc/rfc6749#section-7.1): DPoP is
	// understood only by a handler that holds a DPoP key. It also means a
	// DPoP-bound token was asked for where no proof can go with it
	// ([TokenSource]).
	ErrUnsupportedTokenType = errors.New("auth: unsupported token type")
	// ErrUserMismatch means the login belongs to another user than the one
	// the handler was configured for.
	ErrUserMismatch = errors.New("auth: logged-in user differs from the configured user")
)

// OAuthError is an error answer of an OAuth 2.0 endpoint
// (https://www.rfc-editor.org/rfc/rfc6749#section-5.2). It never carries a
// secret: the request's parameters are not part of it.
type OAuthError struct {
	// Code is the "error" field, e.g. "invalid_grant".
	Code string
	// Description is "error_description", if the provider sent one.
	Description string
	// URI is "error_uri", if the provider sent one.
	URI string
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// RetryAfter is the answer's Retry-After, if it had one (capped).
	RetryAfter time.Duration
}

// Error renders the code, description and status.
func (e *OAuthError) Error() string {
	var b strings.Builder
	b.WriteString("oauth2: ")
	b.WriteString(e.Code)
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.StatusCode)
	}
	return b.String()
}

// Is maps standard codes to the sentinel errors, so that
// errors.Is(err, ErrInvalidGrant) holds for an "invalid_grant" answer.
func (e *OAuthError) Is(target error) bool {
	switch target {
	case ErrInvalidGrant:
		return e.Code == "invalid_grant"
	case ErrAccessDenied:
		return e.Code == "access_denied"
	case ErrInvalidClient:
		return e.Code == "invalid_client"
	case ErrDeviceCodeExpired:
		return e.Code == "expired_token"
	}
	return false
}

// ResponseError is an answer that is not a usable token response nor an
// OAuth error: an HTML error page, an empty or oversized body, a field of the
// wrong type. Excerpt is a short prefix of the body with anything that looks
// like a token removed.
type ResponseError struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// ContentType is the Content-Type header of the answer.
	ContentType string
	// Excerpt is a short, secret-free excerpt of the body.
	Excerpt string
	// Reason says what was wrong, e.g. "body is not JSON".
	Reason string
	// RetryAfter is the answer's Retry-After, if it had one (capped).
	RetryAfter time.Duration
}

// Error renders the reason, status and excerpt.
func (e *ResponseError) Error() string {
	s := fmt.Sprintf("auth: unusable response (HTTP %d", e.StatusCode)
	if e.ContentType != "" {
		s += ", " + e.ContentType
	}
	s += "): " + e.Reason
	if e.Excerpt != "" {
		s += fmt.Sprintf(": %q", e.Excerpt)
	}
	return s
}

// configError returns auth's own configuration error: "auth: " and the
// message, wrapping ErrInvalidConfig.
func configError(format string, args ...any) error {
	return ConfigError("auth: "+format, args...)
}

// ConfigError returns a configuration error for other packages: its
// message is the formatted text, which starts with the package's name
// ("handlers: ClientSecret is required"), and errors.Is(err,
// ErrInvalidConfig) holds. A %w in format wraps that error too.
func ConfigError(format string, args ...any) error {
	return &invalidConfig{err: fmt.Errorf(format, args...)}
}

// invalidConfig is a configuration error: one message, no stacked prefix.
type invalidConfig struct{ err error }

func (e *invalidConfig) Error() string   { return e.err.Error() }
func (e *invalidConfig) Unwrap() []error { return []error{ErrInvalidConfig, e.err} }

// TokenExpiredError is an [ErrTokenExpired] that says when the token
// expired (or would, too soon to be served), for callers that need the
// time, in the manner of go-oidc's TokenExpiredError. errors.Is(err,
// ErrTokenExpired) holds.
type TokenExpiredError struct {
	Expiry time.Time
}

func (e *TokenExpiredError) Error() string {
	return "auth: token expired or too close to its expiry (" + e.Expiry.UTC().Format(time.RFC3339Nano) + ")"
}

// Is reports whether target is ErrTokenExpired.
func (e *TokenExpiredError) Is(target error) bool { return target == ErrTokenExpired }
