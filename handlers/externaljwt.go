package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/jwtclaims"
)

// ErrNoExpiry means a JWT carries no "exp" claim
// (https://www.rfc-editor.org/rfc/rfc7519#section-4.1.4) and no expiry was
// given with it, so nobody knows when to refresh it. It wraps
// [auth.ErrMalformedToken]. Return the expiry from the callback (or set
// ExternallyManagedJWTConfig.Expiry for the initial JWT).
var ErrNoExpiry = fmt.Errorf("handlers: the JWT has no exp claim and no expiry was given with it: %w", auth.ErrMalformedToken)

// ExternallyManagedJWTConfig configures [ExternallyManagedJWT]. Only
// Callback is required.
type ExternallyManagedJWTConfig struct {
	// JWT is an initial token, served without calling Callback while it is
	// valid. Empty means none: the first use calls Callback. An expired JWT
	// is accepted and simply not served.
	JWT auth.Secret
	// Expiry is when JWT expires. Zero means: read the JWT's "exp" claim;
	// a JWT without one is an error wrapping [ErrNoExpiry].
	Expiry time.Time
	// Callback returns a current JWT and when it expires, obtained by the
	// application's own login. A zero expires means: read the JWT's "exp"
	// claim. It is called on a background goroutine, one call at a time,
	// when a token is needed or about to expire, or after a service
	// rejected the current one; ctx is the handler's own (bounded by
	// FetchTimeout, cancelled by Close), never a caller's. Callback must
	// return once ctx is done, or Close waits for it.
	//
	// A JWT too close to its expiry to be served (see auth.Margin) is asked
	// for again, with backoff, for as long as callers wait; so is one after
	// an error wrapped with auth.Transient. Any other error reaches the
	// callers at once. Required.
	Callback func(ctx context.Context) (jwt string, expires time.Time, err error)
	// Username is the identity reported by Username. Empty means: read it
	// from the current JWT's UsernameClaim.
	Username string
	// UsernameClaim names the JWT claim that holds the username, e.g.
	// "sub", "preferred_username" or "email". Empty means "sub". When both
	// Username and UsernameClaim are set, every JWT's claim must equal
	// Username; a JWT of another user is refused with an error wrapping
	// [auth.ErrUserMismatch].
	UsernameClaim string
	// Margin decides when the JWT is refreshed in the background and when
	// it stops being served; the zero value is the engine's (10 % of the
	// lifetime, at least 1 s, capped at half the lifetime: a 6-second JWT
	// is refreshed after 5 s). See [auth.Margin].
	Margin auth.Margin
	// Backoff spaces the calls after failures and rejections; see
	// [auth.Backoff].
	Backoff auth.Backoff
	// Observer receives what the handler does on its slow paths, for
	// telemetry (see package auth/otelauth); nil means nobody.
	Observer auth.Observer
	// FetchTimeout bounds one fetch, retries included. Zero means
	// 2 minutes; negative means no bound.
	FetchTimeout time.Duration
	// OnRejected, if set, is called in its own goroutine when a service
	// rejects the JWT being served (the session's 401, grpcauth's
	// UNAUTHENTICATED): a hint that the application's login should renew
	// it. The handler then asks Callback again; a JWT it returns again is
	// served again, with backoff between the rejections that count (the
	// application may know better than one service).
	OnRejected func(svc auth.Service)
	// Wire names the headers and metadata key. The zero value sends
	// "Authorization: Bearer <jwt>" to the hub and the access manager and
	// metadata "authorization: Bearer <jwt>" to the message service.
	Wire auth.Wire
	// Clock is the source of time; nil means auth.SystemClock().
	Clock auth.Clock
	// Logger receives debug and warning records, never a token; nil means
	// silent.
	Logger *slog.Logger
	// Store keeps the JWT between runs; nil means memory only. A Store
	// needs a StoreKey whose Issuer is set.
	Store auth.Store
	// StoreKey is the key of the JWT in Store.
	StoreKey auth.StoreKey
}

// ExternallyManagedJWT serves a JWT that the application obtains itself:
// for applications that already own the login and hand the SDK their token
// through a callback.
//
// # Trust
//
// The handler reads the JWT's claims ("exp", the username claim) WITHOUT
// verifying its signature, issuer, audience or times. The application that
// supplies the JWT is trusted: the handler only learns from the token when
// to ask for the next one and whom it belongs to. The services that receive
// the token verify it. Never feed this handler a token from an untrusted
// party and act on its Username.
//
// # Lifecycle
//
// It runs on an [auth.Engine]: while the JWT is valid a getter is one atomic
// load and a clock comparison; once its refresh margin is reached, Callback
// is called once in the background while the getters keep serving the
// current JWT; callers that find no valid JWT share one Callback call, each
// waiting only as long as its own ctx allows. After a service rejected the
// JWT, Callback is asked again (see OnRejected). Close it when done.
type ExternallyManagedJWT struct {
	tokenHandler

	callback   func(context.Context) (string, time.Time, error)
	username   string // configured; "" means read claim
	claim      string
	checkClaim bool // both Username and UsernameClaim were set
	user       atomic.Pointer[usernameCache]
}

// usernameCache is the username read from one JWT.
type usernameCache struct {
	jwt  auth.Secret
	name string
}

var (
	_ auth.AuthenticationHandler = (*ExternallyManagedJWT)(nil)
	_ auth.Invalidator           = (*ExternallyManagedJWT)(nil)
)

// NewExternallyManagedJWT validates cfg, checks the initial JWT if there is
// one, and returns the handler. Configuration errors wrap
// [auth.ErrInvalidConfig]; an unusable initial JWT gives the error its
// callback result would (wrapping [auth.ErrMalformedToken], [ErrNoExpiry] or
// [auth.ErrUserMismatch]).
func NewExternallyManagedJWT(cfg ExternallyManagedJWTConfig) (*ExternallyManagedJWT, error) {
	if cfg.Callback == nil {
		return nil, auth.ConfigError("handlers: ExternallyManagedJWTConfig.Callback is required: it returns the application's current JWT")
	}
	if strings.ContainsAny(cfg.Username, "\r\n\x00") {
		return nil, auth.ConfigError("handlers: Username must not contain line breaks")
	}
	if cfg.Store != nil && cfg.StoreKey.Issuer == "" {
		return nil, auth.ConfigError("handlers: a Store needs StoreKey.Issuer (the application's login issuer) to tell its JWT apart")
	}
	if cfg.JWT.IsZero() && !cfg.Expiry.IsZero() {
		return nil, auth.ConfigError("handlers: Expiry is set but JWT is empty")
	}
	h := &ExternallyManagedJWT{
		callback:   cfg.Callback,
		username:   cfg.Username,
		claim:      cfg.UsernameClaim,
		checkClaim: cfg.Username != "" && cfg.UsernameClaim != "",
	}
	if h.claim == "" {
		h.claim = "sub"
	}
	var initial *auth.Token
	if !cfg.JWT.IsZero() {
		tok, err := h.token(cfg.JWT.Reveal(), cfg.Expiry)
		if err != nil {
			return nil, fmt.Errorf("handlers: initial JWT: %w", err)
		}
		initial = tok
	}
	e, err := auth.NewEngine(auth.EngineConfig{
		Fetch:        h.fetch,
		Wire:         cfg.Wire,
		Margin:       cfg.Margin,
		Backoff:      cfg.Backoff,
		FetchTimeout: cfg.FetchTimeout,
		OnRejected:   cfg.OnRejected,
		Clock:        cfg.Clock,
		Store:        cfg.Store,
		StoreKey:     cfg.StoreKey,
		Initial:      initial,
		Logger:       cfg.Logger,
		Name:         "ExternallyManagedJWT",
		Observer:     cfg.Observer,
	})
	if err != nil {
		return nil, err
	}
	h.engine = e
	return h, nil
}

// Authenticate makes sure a valid JWT is held, calling Callback if needed,
// and waits no longer than ctx allows. It returns nil at once while the JWT
// is valid.
func (h *ExternallyManagedJWT) Authenticate(ctx context.Context) error {
	_, err := h.engine.Credentials(ctx)
	if err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		return fmt.Errorf("handlers: ExternallyManagedJWT: no JWT from the callback before the caller gave up: %w", err)
	}
	return err
}

// Username returns the configured Username, or else the UsernameClaim of
// the latest JWT (read without verification), or "" when there is no JWT
// yet or the claim is absent or not a string. It performs no I/O.
func (h *ExternallyManagedJWT) Username() string {
	if h.username != "" {
		return h.username
	}
	tok := h.engine.Current()
	if tok == nil {
		return ""
	}
	if c := h.user.Load(); c != nil && c.jwt.Equal(tok.AccessToken) {
		return c.name
	}
	var name string
	if claims, err := jwtclaims.Decode(tok.AccessToken.Reveal()); err == nil {
		name = claims.String(h.claim)
	}
	h.user.Store(&usernameCache{jwt: tok.AccessToken, name: name})
	return name
}

// fetch is the engine's FetchFunc: it calls Callback. The engine judges
// whether the JWT has life enough left, and retries if not.
func (h *ExternallyManagedJWT) fetch(ctx context.Context, _ *auth.Token) (*auth.Token, error) {
	raw, expires, err := h.callback(ctx)
	if err != nil {
		return nil, fmt.Errorf("handlers: the JWT callback failed: %w", err)
	}
	tok, err := h.token(raw, expires)
	if err != nil {
		return nil, fmt.Errorf("handlers: the JWT callback returned an unusable token: %w", err)
	}
	return tok, nil
}

// token checks a JWT handed in by the application and makes a Token of it.
func (h *ExternallyManagedJWT) token(raw string, expires time.Time) (*auth.Token, error) {
	claims, err := jwtclaims.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", auth.ErrMalformedToken, err)
	}
	if expires.IsZero() {
		if expires, err = claims.Expiry(); err != nil {
			return nil, fmt.Errorf("%w: %w", auth.ErrMalformedToken, err)
		}
		if expires.IsZero() {
			return nil, ErrNoExpiry
		}
	}
	if h.checkClaim {
		if got := claims.String(h.claim); got != h.username {
			return nil, fmt.Errorf("%w: the JWT's %q claim is %q, the configured Username is %q",
				auth.ErrUserMismatch, h.claim, got, h.username)
		}
	}
	return &auth.Token{AccessToken: auth.NewSecret(raw), TokenType: "Bearer", Expiry: expires}, nil
}
