package auth

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/authkit-go/authkit/internal/redact"
)

// extraKeysField is the key under which ToOAuth2 lists the names of
// Token.Extra, so that FromOAuth2 can restore them: an oauth2.Token
// answers Extra(key) for a known key but cannot list its fields.
const extraKeysField = "authkit_extra_keys"

// TokenReader is what [TokenSource] reads tokens from: an [Engine], an
// [EngineHandler], or any authkit handler with tokens (its Token follows
// the handler's own rules, as its getters do).
type TokenReader interface {
	// Token returns a copy of the token being served, fetching one if
	// needed, waiting no longer than ctx allows.
	Token(ctx context.Context) (*Token, error)
}

// TokenSource returns an oauth2.TokenSource whose tokens come from r, for
// code written against golang.org/x/oauth2 (oauth2.Transport,
// oauth2.NewClient, grpc's oauth.TokenSource).
//
// x/oauth2's Token method takes no context, so each call waits for r with
// context.Background: as long as a fetch in flight takes, which
// EngineConfig.FetchTimeout bounds. Callers that have a context should call
// r.Token instead. While r holds a valid token, Token is cheap and does not
// block; there is no need to wrap the source in oauth2.ReuseTokenSource,
// whose fixed 10-second expiry margin would only add a second cache.
// Credentials that are not a token (API keys) yield an error, and so does
// a DPoP-bound token: x/oauth2 would send it without the proof each request
// needs (use the session, grpcauth or [RequestAuthenticator] instead).
func TokenSource(r TokenReader) oauth2.TokenSource {
	return &tokenSource{r: r}
}

// tokenSource converts each token of its reader once and shares it:
// x/oauth2 forbids modifying a returned token.
type tokenSource struct {
	r    TokenReader
	last atomic.Pointer[convertedToken]
}

type convertedToken struct {
	access Secret
	expiry time.Time
	tok    *oauth2.Token
}

// Token returns the reader's current token, converted with ToOAuth2.
func (s *tokenSource) Token() (*oauth2.Token, error) {
	if e, ok := s.r.(*Engine); ok {
		// An engine's own token, without the copy Token makes.
		c, err := e.Credentials(context.Background())
		if err != nil {
			return nil, err
		}
		return s.convert(c.Token)
	}
	t, err := s.r.Token(context.Background())
	if err != nil {
		return nil, err
	}
	return s.convert(t)
}

// convert converts t once per token the reader serves.
func (s *tokenSource) convert(t *Token) (*oauth2.Token, error) {
	if t == nil {
		return nil, fmt.Errorf("%w: the credentials are not a token", ErrUnsupportedTokenType)
	}
	if dpopBound(t) {
		return nil, fmt.Errorf("%w: the token is DPoP-bound and needs a proof per request, which an oauth2.TokenSource cannot send; use package session or grpcauth", ErrUnsupportedTokenType)
	}
	if last := s.last.Load(); last != nil && last.access.Equal(t.AccessToken) && last.expiry.Equal(t.Expiry) {
		return last.tok, nil
	}
	o := ToOAuth2(t)
	s.last.Store(&convertedToken{access: t.AccessToken, expiry: t.Expiry, tok: o})
	return o, nil
}

// FetchFromTokenSource returns a FetchFunc that takes its tokens from ts, so
// that an [Engine] (with its margin, background refresh, store and
// invalidation) can be fed by any x/oauth2 source: a clientcredentials
// Config, a google.CredentialsFromJSON source, an oauth2.Config's
// TokenSource...
//
// ts.Token takes no context, so the engine's ctx cannot reach the HTTP
// requests it makes. The fetch runs ts.Token in its own goroutine and
// returns when ctx is done, so that a hung source cannot stall the engine
// beyond EngineConfig.FetchTimeout; that goroutine then ends only when
// ts.Token returns (x/oauth2 requires sources to be safe for concurrent
// use). To bound the requests themselves, give the source an HTTP client
// with a timeout (the oauth2.HTTPClient context value of the source's
// constructor).
//
// The current token is not passed to ts: the source refreshes on its own.
// Wrapping ts in oauth2.ReuseTokenSource is unnecessary — the engine caches —
// and would hand back a token the engine already found expired or a service
// rejected, until x/oauth2's own 10-second margin is reached.
//
// An OAuth error answer (*oauth2.RetrieveError with an error code) is
// returned as an error that matches both the *OAuthError (so that
// errors.Is(err, ErrInvalidGrant) holds) and the original
// *oauth2.RetrieveError. Its message leaves out the response body, and its
// description and URI are cleaned of what a provider may echo: the secrets
// given here (say, the source's client secret), in every encoding, and any
// token-like run. The original RetrieveError, reached with errors.As, is
// x/oauth2's and carries the raw body.
func FetchFromTokenSource(ts oauth2.TokenSource, secrets ...Secret) FetchFunc {
	scrub := &redact.Scrubber{}
	for _, s := range secrets {
		scrub.Add(s.Reveal())
	}
	return func(ctx context.Context, _ *Token) (*Token, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		type result struct {
			tok *oauth2.Token
			err error
		}
		done := make(chan result, 1)
		go func() {
			tok, err := ts.Token()
			done <- result{tok, err}
		}()
		select {
		case r := <-done:
			if r.err != nil {
				return nil, fromRetrieveError(r.err, scrub)
			}
			if r.tok == nil {
				return nil, fmt.Errorf("%w: the token source returned no token", ErrMalformedToken)
			}
			return FromOAuth2(r.tok), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// retrieveError is an *oauth2.RetrieveError seen as an *OAuthError.
type retrieveError struct {
	oauth *OAuthError
	orig  *oauth2.RetrieveError
}

func (e *retrieveError) Error() string   { return e.oauth.Error() }
func (e *retrieveError) Unwrap() []error { return []error{e.oauth, e.orig} }

// cleanedError is an error of a token source with a cleaned message; the
// original stays reachable with errors.As.
type cleanedError struct {
	msg  string
	orig error
}

func (e *cleanedError) Error() string { return e.msg }
func (e *cleanedError) Unwrap() error { return e.orig }

// fromRetrieveError maps an x/oauth2 error answer to an *OAuthError with
// cleaned text; any other error is described without its URL's query.
func fromRetrieveError(err error, scrub *redact.Scrubber) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode == "" {
		msg := "auth: token source: " + redact.Text(err.Error(), 300, scrub)
		if re != nil {
			status := 0
			if re.Response != nil {
				status = re.Response.StatusCode
			}
			msg = fmt.Sprintf("auth: token source: unusable answer (HTTP %d): %s", status, redact.Excerpt(re.Body, scrub))
		}
		return &cleanedError{msg: msg, orig: err}
	}
	oe := &OAuthError{Code: redact.Text(re.ErrorCode, 100, scrub), Description: redact.Text(re.ErrorDescription, 300, scrub),
		URI: redact.Text(re.ErrorURI, 300, scrub)}
	if re.Response != nil {
		oe.StatusCode = re.Response.StatusCode
	}
	return &retrieveError{oauth: oe, orig: re}
}

// ToOAuth2 converts t to an *oauth2.Token, or returns nil for nil.
//
// AccessToken, TokenType, RefreshToken and Expiry map to the fields of the
// same name. IDToken, Scope and every Extra entry become extra fields, read
// with oauth2.Token.Extra as for a token that x/oauth2 fetched itself:
// Extra("id_token"), Extra("scope"), Extra(<key>) (a string). RefreshExpiry
// has no place in an oauth2.Token and is dropped.
func ToOAuth2(t *Token) *oauth2.Token {
	if t == nil {
		return nil
	}
	o := &oauth2.Token{
		AccessToken:  t.AccessToken.Reveal(),
		TokenType:    t.TokenType,
		RefreshToken: t.RefreshToken.Reveal(),
		Expiry:       t.Expiry,
	}
	raw := make(map[string]any, len(t.Extra)+3)
	for k, v := range t.Extra {
		raw[k] = v.Reveal()
	}
	if len(t.Extra) > 0 {
		raw[extraKeysField] = slices.Sorted(maps.Keys(t.Extra))
	}
	if !t.IDToken.IsZero() {
		raw["id_token"] = t.IDToken.Reveal()
	}
	if t.Scope != "" {
		raw["scope"] = t.Scope
	}
	if len(raw) == 0 {
		return o
	}
	return o.WithExtra(raw)
}

// FromOAuth2 converts o to a *Token, or returns nil for nil.
//
// AccessToken, TokenType, RefreshToken and Expiry are copied; IDToken and
// Scope come from the extra fields "id_token" and "scope" when they are
// strings. Extra is restored for a token made by ToOAuth2. For a token that
// x/oauth2 fetched, other fields of the response cannot be listed (an
// oauth2.Token only answers Extra(key) for a known key): copy the ones you
// need with tok.Extra[k] = auth.NewSecret(fmt.Sprint(o.Extra(k))).
func FromOAuth2(o *oauth2.Token) *Token {
	if o == nil {
		return nil
	}
	t := &Token{
		AccessToken:  NewSecret(o.AccessToken),
		TokenType:    o.TokenType,
		RefreshToken: NewSecret(o.RefreshToken),
		Expiry:       o.Expiry,
	}
	if s, ok := o.Extra("id_token").(string); ok {
		t.IDToken = NewSecret(s)
	}
	if s, ok := o.Extra("scope").(string); ok {
		t.Scope = s
	}
	if keys, ok := o.Extra(extraKeysField).([]string); ok {
		for _, k := range keys {
			if v, ok := o.Extra(k).(string); ok {
				if t.Extra == nil {
					t.Extra = make(map[string]Secret, len(keys))
				}
				t.Extra[k] = NewSecret(v)
			}
		}
	}
	return t
}
