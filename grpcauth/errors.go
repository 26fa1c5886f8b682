package grpcauth

import (
	"errors"
	"strings"
)

// Categories of refused credentials; test for them with errors.Is on the
// errors that validators return.
var (
	// ErrNoCredentials means the call carried no credential of the kind the
	// validator checks. A [ValidatorList] then asks its next validator.
	ErrNoCredentials = errors.New("grpcauth: no credentials")
	// ErrMalformedCredentials means the credential cannot be parsed: not a
	// JWT, a wrong prefix, an entry sent twice.
	ErrMalformedCredentials = errors.New("grpcauth: malformed credentials")
	// ErrInvalidCredentials means the credential is not genuine: a bad
	// signature, an unknown key, an algorithm that is not allowed, an
	// unknown API key or a wrong secret.
	ErrInvalidCredentials = errors.New("grpcauth: invalid credentials")
	// ErrExpired means the token expired, or is not valid yet.
	ErrExpired = errors.New("grpcauth: credentials expired or not yet valid")
	// ErrWrongAudience means the token was issued by another issuer or for
	// another audience than this service's.
	ErrWrongAudience = errors.New("grpcauth: credentials meant for another issuer or audience")
	// ErrMissingClaim means the token lacks a claim the service requires.
	ErrMissingClaim = errors.New("grpcauth: a required claim is missing")
)

// Error is a validator's refusal. The server interceptors send the caller
// Message only; Detail says why, for the server's logs, and may name a
// cause the caller must not learn (e.g. why a signature failed).
type Error struct {
	// Kind is one of the category errors above, e.g. ErrExpired.
	Kind error
	// Message is safe to send to the caller and says what to do next.
	Message string
	// Detail is the cause, for logs; it may be nil. It never carries a
	// secret.
	Detail error
}

// Error renders the message and the detail.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	if e.Detail != nil {
		b.WriteString(" (")
		b.WriteString(e.Detail.Error())
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the kind and the detail, for errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Detail == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Detail}
}

func refuse(kind error, msg string, detail error) *Error {
	return &Error{Kind: kind, Message: msg, Detail: detail}
}
