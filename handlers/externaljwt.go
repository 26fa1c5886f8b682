package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/oauthclient"
)

// ErrStaleToken means the callback of an [ExternallyManagedJWT] kept
// returning a JWT that expires within the refresh margin (or has expired),
// also after the retries of StaleAttempts. It wraps [auth.ErrTokenExpired],
// so errors.Is(err, auth.ErrTokenExpired) holds as well. Make the
// application hand out tokens with more life left, or lower Margin.
var ErrStaleToken = fmt.Errorf("handlers: the JWT callback keeps returning a token that expires within the refresh margin: %w", auth.ErrTokenExpired)

// ErrNoExpiry means a JWT carries no "exp" claim
// (https://www.rfc-editor.org/rfc/rfc7519#section-4.1.4) and no expiry was
// given with it, so nobody knows when to refresh it. It wraps
// [auth.ErrMalformedToken]. Return the expiry from the callback (or set
// ExternallyManagedJWTConfig.Expiry for the initial JWT).
var ErrNoExpiry = fmt.Errorf("handlers: the JWT has no exp claim and no expiry was given with it: %w", auth.ErrMalformedToken)

// DefaultStaleAttempts is the number of callback calls per fetch when the
// callback returns stale tokens and ExternallyManagedJWTConfig.StaleAttempts
// is zero.
const DefaultStaleAttempts = 3

// DefaultStaleBackoff is the wait before retry number retry (1, 2, ...) of
// the callback after it returned a stale token: 1 s, 2 s, 4 s..., at most
// 30 s.
func DefaultStaleBackoff(retry int) time.Duration {
	d := time.Second
	for i := 1; i < retry && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

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
	// when a token is needed or about to expire; ctx is the handler's own
	// (bounded by FetchTimeout, cancelled by Close), never a caller's.
	// Callback must return once ctx is done, or Close waits for it.
	// It should hand out a token with more than the margin of life left
	// (renew the application's token early, or lower Margin): a token
	// that is stale on arrival is asked for again, see StaleAttempts.
	// Required.
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
	// Margin decides how long before expiry the token is refreshed in the
	// background. Zero means auth.Margin{Fixed: time.Minute}. A token that
	// Callback returns with less than Margin.Fixed (or, without Fixed,
	// Margin.Min) of life left is stale: Callback is asked again.
	Margin auth.Margin
	// StaleAttempts is how many times one fetch calls Callback while it
	// returns stale tokens, before failing with [ErrStaleToken]. Zero means
	// DefaultStaleAttempts (3); 1 means no retry.
	StaleAttempts int
	// StaleBackoff returns the wait before retry number retry (1, 2, ...).
	// Nil means DefaultStaleBackoff (1 s, then 2 s). The waits run on Clock
	// and end early when the fetch's ctx is done.
	StaleBackoff func(retry int) time.Duration
	// Backoff spaces fetches after a failed one; see [auth.Backoff].
	Backoff auth.Backoff
	// FetchTimeout bounds one fetch, retries included. Zero means
	// 2 minutes; negative means no bound.
	FetchTimeout time.Duration
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
// load; Margin (1 minute by default) before it expires, Callback is called
// once in the background while the getters keep serving the current JWT;
// callers that find no valid JWT share one Callback call, each waiting only
// as long as its own ctx allows. Close it when done.
//
// It never prints the JWT: String, Format and LogValue redact it.
type ExternallyManagedJWT struct {
	*auth.Engine

	callback    func(context.Context) (string, time.Time, error)
	username    string // configured; "" means read claim
	claim       string
	checkClaim  bool // both Username and UsernameClaim were set
	staleWithin time.Duration
	attempts    int
	backoff     func(int) time.Duration
	clock       auth.Clock
	log         *slog.Logger
	user        *atomic.Pointer[usernameCache] // behind a pointer: the struct stays copyable for Format
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
	if cfg.StaleAttempts < 0 {
		return nil, auth.ConfigError("StaleAttempts must not be negative, got %d", cfg.StaleAttempts)
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
	if cfg.Margin == (auth.Margin{}) {
		cfg.Margin = auth.Margin{Fixed: time.Minute}
	}
	h := &ExternallyManagedJWT{
		callback:    cfg.Callback,
		username:    cfg.Username,
		claim:       cfg.UsernameClaim,
		checkClaim:  cfg.Username != "" && cfg.UsernameClaim != "",
		staleWithin: cfg.Margin.Fixed,
		attempts:    cfg.StaleAttempts,
		backoff:     cfg.StaleBackoff,
		clock:       cfg.Clock,
		log:         cfg.Logger,
		user:        new(atomic.Pointer[usernameCache]),
	}
	if h.claim == "" {
		h.claim = "sub"
	}
	if h.staleWithin <= 0 {
		h.staleWithin = cfg.Margin.Min
	}
	if h.attempts == 0 {
		h.attempts = DefaultStaleAttempts
	}
	if h.backoff == nil {
		h.backoff = DefaultStaleBackoff
	}
	if h.clock == nil {
		h.clock = auth.SystemClock()
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
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
		Clock:        h.clock,
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
	if claims, err := unverifiedClaims(tok.AccessToken); err == nil {
		name = claimString(claims, h.claim)
	}
	h.user.Store(&usernameCache{jwt: tok.AccessToken, name: name})
	return name
}

// fetch is the engine's FetchFunc: it calls Callback, asking again with
// backoff while the JWT it returns is stale.
func (h *ExternallyManagedJWT) fetch(ctx context.Context, _ *auth.Token) (*auth.Token, error) {
	for attempt := 1; ; attempt++ {
		raw, expires, err := h.callback(ctx)
		if err != nil {
			return nil, fmt.Errorf("handlers: the JWT callback failed: %w", err)
		}
		tok, err := h.token(raw, expires)
		if err != nil {
			return nil, fmt.Errorf("handlers: the JWT callback returned an unusable token: %w", err)
		}
		left := tok.Expiry.Sub(h.clock.Now())
		if left > h.staleWithin {
			return tok, nil
		}
		if attempt >= h.attempts {
			return nil, fmt.Errorf("%w: %d calls; the last token expires in %s (at %s), the margin is %s",
				ErrStaleToken, attempt, left.Round(time.Millisecond), tok.Expiry.UTC().Format(time.RFC3339), h.staleWithin)
		}
		wait := h.backoff(attempt)
		h.log.Warn("handlers: the JWT callback returned a token that expires within the refresh margin; asking again",
			"expires_in", left, "attempt", attempt, "retry_in", wait)
		if err := oauthclient.Sleep(ctx, h.clock, wait); err != nil {
			return nil, fmt.Errorf("handlers: waiting to call the JWT callback again: %w", err)
		}
	}
}

// token checks a JWT handed in by the application and makes a Token of it.
func (h *ExternallyManagedJWT) token(raw string, expires time.Time) (*auth.Token, error) {
	claims, err := unverifiedClaims(raw)
	if err != nil {
		return nil, err
	}
	if expires.IsZero() {
		if expires, err = claimExpiry(claims); err != nil {
			return nil, err
		}
		if expires.IsZero() {
			return nil, ErrNoExpiry
		}
	}
	if h.checkClaim {
		if got := claimString(claims, h.claim); got != h.username {
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
