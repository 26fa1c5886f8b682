package handlers

import (
	"context"
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
//
// The configuration never prints its JWT: String, GoString, Format (every fmt
// verb) and LogValue show only whether it is set.
type ExternallyManagedJWTConfig struct {
	// JWT is an initial token, served without calling Callback while it is
	// valid. Empty means none: the first use calls Callback. An expired JWT
	// is accepted and simply not served.
	JWT string
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

// String describes the configuration without the JWT.
func (c ExternallyManagedJWTConfig) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ExternallyManagedJWTConfig{jwt=%s", secretPresence(c.JWT))
	if !c.Expiry.IsZero() {
		fmt.Fprintf(&b, " expiry=%s", c.Expiry.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, " callback=%t user=%q claim=%q}", c.Callback != nil, c.Username, c.UsernameClaim)
	return b.String()
}

// GoString is String: %#v never shows the JWT either.
func (c ExternallyManagedJWTConfig) GoString() string { return c.String() }

// Format makes every fmt verb (%v, %+v, %#v, %s, %q) print String.
func (c ExternallyManagedJWTConfig) Format(f fmt.State, verb rune) {
	formatAsString(f, verb, c.String())
}

// LogValue renders the configuration for log/slog without the JWT.
func (c ExternallyManagedJWTConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("jwt", secretPresence(c.JWT)),
		slog.Bool("callback", c.Callback != nil),
		slog.String("user", c.Username),
		slog.String("claim", c.UsernameClaim),
	)
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
// It embeds *[auth.Engine]: while the JWT is valid a getter is one atomic
// load and a clock comparison; once its refresh margin is reached, Callback
// is called once in the background while the getters keep serving the
// current JWT; callers that find no valid JWT share one Callback call, each
// waiting only as long as its own ctx allows. After a service rejected the
// JWT, Callback is asked again (see OnRejected). Close it when done.
//
// It never prints the JWT: String, Format and LogValue redact it.
type ExternallyManagedJWT struct {
	*auth.Engine

	callback   func(context.Context) (string, time.Time, error)
	username   string // configured; "" means read claim
	claim      string
	checkClaim bool                           // both Username and UsernameClaim were set
	user       *atomic.Pointer[usernameCache] // behind a pointer: the struct stays copyable for Format
}

type usernameCache struct{ jwt, name string }

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
		return nil, auth.ConfigError("ExternallyManagedJWTConfig.Callback is required: it returns the application's current JWT")
	}
	if strings.ContainsAny(cfg.Username, "\r\n\x00") {
		return nil, auth.ConfigError("Username must not contain line breaks")
	}
	if cfg.Store != nil && cfg.StoreKey.Issuer == "" {
		return nil, auth.ConfigError("a Store needs StoreKey.Issuer (the application's login issuer) to tell its JWT apart")
	}
	if cfg.JWT == "" && !cfg.Expiry.IsZero() {
		return nil, auth.ConfigError("Expiry is set but JWT is empty")
	}
	h := &ExternallyManagedJWT{
		callback:   cfg.Callback,
		username:   cfg.Username,
		claim:      cfg.UsernameClaim,
		checkClaim: cfg.Username != "" && cfg.UsernameClaim != "",
		user:       new(atomic.Pointer[usernameCache]),
	}
	if h.claim == "" {
		h.claim = "sub"
	}
	var initial *auth.Token
	if cfg.JWT != "" {
		tok, err := h.token(cfg.JWT, cfg.Expiry)
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
	})
	if err != nil {
		return nil, err
	}
	h.Engine = e
	return h, nil
}

// Authenticate makes sure a valid JWT is held, calling Callback if needed,
// and waits no longer than ctx allows. It returns nil at once while the JWT
// is valid.
func (h *ExternallyManagedJWT) Authenticate(ctx context.Context) error {
	_, err := h.Credentials(ctx)
	return err
}

// Authenticated reports whether the JWT is valid now with the refresh
// margin to spare. It performs no I/O.
func (h *ExternallyManagedJWT) Authenticated() bool { return h.Valid() }

// Username returns the configured Username, or else the UsernameClaim of
// the latest JWT (read without verification), or "" when there is no JWT
// yet or the claim is absent or not a string. It performs no I/O.
func (h *ExternallyManagedJWT) Username() string {
	if h.username != "" {
		return h.username
	}
	tok := h.Current()
	if tok == nil {
		return ""
	}
	if c := h.user.Load(); c != nil && c.jwt == tok.AccessToken {
		return c.name
	}
	var name string
	if claims, err := jwtclaims.Decode(tok.AccessToken); err == nil {
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
	return &auth.Token{AccessToken: raw, TokenType: "Bearer", Expiry: expires}, nil
}

// String describes the handler without the JWT.
func (h ExternallyManagedJWT) String() string {
	if h.Engine == nil {
		return "ExternallyManagedJWT{}"
	}
	tok := h.Current()
	expiry := "none"
	if tok != nil && !tok.Expiry.IsZero() {
		expiry = tok.Expiry.UTC().Format(time.RFC3339)
	}
	jwt := "unset"
	if tok != nil {
		jwt = secretPresence(tok.AccessToken)
	}
	return fmt.Sprintf("ExternallyManagedJWT{user=%q jwt=%s expiry=%s valid=%t}", h.username, jwt, expiry, h.Valid())
}

// GoString is String: %#v never shows the JWT either.
func (h ExternallyManagedJWT) GoString() string { return h.String() }

// Format makes every fmt verb (%v, %+v, %#v, %s, %q) print String.
func (h ExternallyManagedJWT) Format(f fmt.State, verb rune) { formatAsString(f, verb, h.String()) }

// LogValue renders the handler for log/slog without the JWT.
func (h ExternallyManagedJWT) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("handler", "externally_managed_jwt"), slog.String("user", h.username)}
	if h.Engine != nil {
		if tok := h.Current(); tok != nil {
			attrs = append(attrs, slog.Any("token", tok)) // auth.Token redacts itself
		}
		attrs = append(attrs, slog.Bool("valid", h.Valid()))
	}
	return slog.GroupValue(attrs...)
}
