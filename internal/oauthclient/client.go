// Package oauthclient is the one token-endpoint client that every OAuth
// grant of authkit uses: a form POST with explicitly chosen client
// authentication, tolerant parsing of RFC 6749 §5.1 answers, typed errors for
// §5.2 answers and for unusable bodies, and retries of network errors, 429
// and 5xx answers only.
//
// Nothing here logs or returns a secret: errors carry the status, the OAuth
// error fields and a short excerpt of the body with token-like text removed.
package oauthclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/backoff"
	"github.com/authkit-go/authkit/internal/redact"
)

// AuthStyle says how the client authenticates to the token endpoint
// (https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1). It is always chosen
// explicitly: the client never tries one style and then the other.
type AuthStyle int

const (
	// AuthNone sends only client_id in the form: a public client.
	AuthNone AuthStyle = iota
	// AuthBasic sends client_id and client_secret in an HTTP Basic
	// Authorization header (client_secret_basic).
	AuthBasic
	// AuthPost sends client_id and client_secret in the form
	// (client_secret_post).
	AuthPost
	// AuthAssertion sends client_id and a JWT from Config.Assertion as
	// client_assertion (https://www.rfc-editor.org/rfc/rfc7523#section-2.2):
	// private_key_jwt, or a federated token.
	AuthAssertion
)

// ClientAssertionType is the client_assertion_type of AuthAssertion.
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// AssertionFunc returns a client assertion for a request to audience, the
// URL of the endpoint: a new one per request.
type AssertionFunc func(ctx context.Context, audience string) (auth.Secret, error)

// String names the style as OpenID Connect does.
func (s AuthStyle) String() string {
	switch s {
	case AuthNone:
		return "none"
	case AuthBasic:
		return "client_secret_basic"
	case AuthPost:
		return "client_secret_post"
	case AuthAssertion:
		return "private_key_jwt"
	}
	return "AuthStyle(" + strconv.Itoa(int(s)) + ")"
}

// MaxBodySize is the largest answer body read; a larger one is an error.
const MaxBodySize = 1 << 20

// Config configures a [Client].
type Config struct {
	// ClientID identifies the client. Required.
	ClientID string
	// ClientSecret authenticates a confidential client.
	ClientSecret auth.Secret
	// AuthStyle says where ClientID and ClientSecret go.
	AuthStyle AuthStyle
	// Assertion makes the client assertion of AuthAssertion.
	Assertion AssertionFunc
	// HTTPClient sends the requests; nil means http.DefaultClient. The
	// client is copied and never follows redirects, so that secrets in the
	// form are never re-sent to another place.
	HTTPClient *http.Client
	// Clock times expiries and retry waits; nil means auth.SystemClock().
	Clock auth.Clock
	// Retry decides retries; nil means DefaultRetry.
	Retry RetryPolicy
	// Logger receives debug records without secrets; nil means silent.
	Logger *slog.Logger
	// UserAgent is sent as User-Agent; empty means auth.DefaultUserAgent.
	UserAgent string
}

// Client posts forms to OAuth endpoints. It is safe for concurrent use.
type Client struct {
	clientID string
	secret   auth.Secret
	style    AuthStyle
	assert   AssertionFunc
	rt       http.RoundTripper
	timeout  time.Duration // the HTTPClient's Timeout, per request
	clock    auth.Clock
	retry    RetryPolicy
	log      *slog.Logger
	ua       string
}

// discardLogger is the logger of clients given none.
var discardLogger = slog.New(slog.DiscardHandler)

// New returns a client for cfg. It sends through cfg.HTTPClient's
// transport, within its Timeout, and never follows a redirect: a secret in
// the form is never re-sent to another place.
func New(cfg Config) *Client {
	c := &Client{clientID: cfg.ClientID, secret: cfg.ClientSecret, style: cfg.AuthStyle, assert: cfg.Assertion,
		rt: http.DefaultTransport, clock: cfg.Clock, retry: cfg.Retry, log: cfg.Logger, ua: cfg.UserAgent}
	if c.ua == "" {
		c.ua = auth.DefaultUserAgent
	}

	if cfg.HTTPClient != nil {
		c.timeout = cfg.HTTPClient.Timeout
		if cfg.HTTPClient.Transport != nil {
			c.rt = cfg.HTTPClient.Transport
		}
	}
	if c.clock == nil {
		c.clock = auth.SystemClock()
	}
	if c.retry == nil {
		c.retry = DefaultRetry
	}
	if c.log == nil {
		c.log = discardLogger
	}
	return c
}

// Response is an answer of an endpoint: its status, headers and body (at
// most MaxBodySize bytes).
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// Token posts form to the token endpoint tokenURL, once, and parses the
// answer (https://www.rfc-editor.org/rfc/rfc6749#section-5). form must carry
// grant_type; the client adds its authentication. Lifetimes count from when
// the request was sent. Errors are *auth.OAuthError for §5.2 answers,
// *auth.ResponseError for unusable ones (both with the answer's
// Retry-After), or the network error; auth.IsTransient tells which are worth
// retrying. Token does not retry: the token engine, which knows how long its
// callers wait, is the retry loop of token requests.
func (c *Client) Token(ctx context.Context, tokenURL string, form url.Values) (*auth.Token, error) {
	return c.TokenWithProof(ctx, tokenURL, form, nil)
}

// TokenWithProof is Token with a DPoP proof made with key
// (https://www.rfc-editor.org/rfc/rfc9449#section-5); a nil key sends
// none. The proof carries the nonce the token endpoint's origin handed out
// last (the key remembers it); an answer of use_dpop_nonce with a DPoP-Nonce header
// (https://www.rfc-editor.org/rfc/rfc9449#section-8) is retried once at
// once, with a new proof (and a new client assertion). The token carries
// key: a DPoP-bound token when the provider says token_type DPoP, and
// in any case a refresh token that may be bound to it.
func (c *Client) TokenWithProof(ctx context.Context, tokenURL string, form url.Values, key *auth.DPoPKey) (*auth.Token, error) {
	for try := 0; ; try++ {
		sent, err := c.authenticate(ctx, tokenURL, form)
		if err != nil {
			return nil, err
		}
		at := c.clock.Now()
		var proof, sentNonce string
		if key != nil {
			sentNonce = key.Nonce(tokenURL)
			if proof, err = key.Proof(http.MethodPost, tokenURL, "", sentNonce, at); err != nil {
				return nil, fmt.Errorf("oauthclient: DPoP proof: %w", err)
			}
		}
		scrub := c.scrubber(sent)
		resp, err := c.once(ctx, tokenURL, sent.Encode(), scrub, proof)
		if err != nil {
			return nil, err
		}
		var now string // the nonce the key holds after the answer
		if key != nil {
			key.KeepNonce(tokenURL, resp.Header)
			now = key.Nonce(tokenURL)
		}
		tok, err := parseTokenResponseFor(resp.StatusCode, resp.Header, resp.Body, at, scrub, key != nil)
		var oe *auth.OAuthError
		// Retried when the key now holds another nonce than the proof
		// carried: this answer's, or one a concurrent request learnt.
		if try == 0 && now != "" && now != sentNonce && errors.As(err, &oe) && oe.Code == "use_dpop_nonce" {
			c.log.Debug("oauthclient: the token endpoint asks for a DPoP nonce; retrying with it", "endpoint", redact.URL(tokenURL))
			continue
		}
		if tok != nil {
			tok.DPoPKey = key
		}
		return tok, c.withRetryAfter(err, resp)
	}
}

// Post posts form with the client's authentication to endpoint, retrying
// network errors, 429 and 5xx answers as the retry policy allows: for the
// requests no engine retries (device authorization, revocation). An answer
// that carries a device-flow error (authorization_pending, slow_down) is
// returned at once whatever its status, as an *auth.OAuthError. A body over
// MaxBodySize is an *auth.ResponseError.
func (c *Client) Post(ctx context.Context, endpoint string, form url.Values) (*Response, error) {
	grant := form.Get("grant_type")
	for attempt := 1; ; attempt++ {
		// Authenticated anew for every attempt: a client assertion is
		// good for one request (its jti is spent) and for a minute.
		sent, err := c.authenticate(ctx, endpoint, form)
		if err != nil {
			return nil, err
		}
		scrub := c.scrubber(sent)
		resp, err := c.once(ctx, endpoint, sent.Encode(), scrub, "")
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			var re *auth.ResponseError
			if errors.As(err, &re) { // oversized: retrying will not help
				return nil, err
			}
		} else if !retryableStatus(resp.StatusCode) {
			return resp, nil
		} else if oe := parseError(resp.StatusCode, resp.Body, scrub); oe != nil && !retryableCode(oe.Code) {
			return nil, c.withRetryAfter(oe, resp)
		}
		status, wait := 0, time.Duration(0)
		if resp != nil {
			status = resp.StatusCode
			wait, _ = backoff.RetryAfter(resp.Header.Get("Retry-After"), resp.Header.Get("Date"), c.clock.Now(), defaultRetryAfterMax)
		}
		wait, again := c.retry(attempt, status, wait, err)
		if !again {
			if err != nil {
				return nil, err
			}
			return resp, nil
		}
		c.log.Debug("oauthclient: retrying", "endpoint", redact.URL(endpoint), "grant_type", grant, "attempt", attempt, "status", status, "wait", wait)
		if err := backoff.Sleep(ctx, c.clock.AfterFunc, wait); err != nil {
			return nil, err
		}
	}
}

// withRetryAfter records resp's Retry-After in an OAuth or response error.
func (c *Client) withRetryAfter(err error, resp *Response) error {
	if err == nil || resp == nil {
		return err
	}
	d, ok := backoff.RetryAfter(resp.Header.Get("Retry-After"), resp.Header.Get("Date"), c.clock.Now(), defaultRetryAfterMax)
	if !ok {
		return err
	}
	var oe *auth.OAuthError
	var re *auth.ResponseError
	switch {
	case errors.As(err, &oe):
		oe.RetryAfter = d
	case errors.As(err, &re):
		re.RetryAfter = d
	}
	return err
}

// authenticate returns a copy of form with the client's authentication for
// a request to endpoint. An assertion is made per request: it is valid
// for that request only (its jti is spent at the provider).
func (c *Client) authenticate(ctx context.Context, endpoint string, form url.Values) (url.Values, error) {
	f := make(url.Values, len(form)+3)
	for k, v := range form {
		f[k] = append([]string(nil), v...)
	}
	switch c.style {
	case AuthAssertion:
		a, err := c.assert(ctx, endpoint)
		if err != nil {
			return nil, fmt.Errorf("oauthclient: client assertion: %w", err)
		}
		f.Set("client_id", c.clientID)
		f.Set("client_assertion_type", ClientAssertionType)
		f.Set("client_assertion", a.Reveal())
	case AuthPost:
		f.Set("client_id", c.clientID)
		f.Set("client_secret", c.secret.Reveal())
	case AuthNone:
		f.Set("client_id", c.clientID)
	}
	return f, nil
}

// publicParams are form parameters that carry no secret: left in the
// provider's error texts, which are clearer with them.
var publicParams = map[string]bool{
	"grant_type": true, "scope": true, "client_id": true, "username": true, "audience": true,
	"resource": true, "redirect_uri": true, "code_challenge_method": true, "client_assertion_type": true,
	"subject_token_type": true, "actor_token_type": true, "requested_token_type": true,
}

// scrubber removes, from what the provider answers, every value of form
// but the public ones, and the client's credentials in every form they
// were sent in, so that a provider that echoes the request cannot make an
// error or a log record carry a secret.
func (c *Client) scrubber(form url.Values) *redact.Scrubber {
	s := &redact.Scrubber{}
	for k, vv := range form {
		if publicParams[k] {
			continue
		}
		for _, v := range vv {
			s.Add(v)
		}
	}
	if secret := c.secret.Reveal(); secret != "" {
		s.Add(secret)
		s.Add(url.QueryEscape(c.clientID) + ":" + url.QueryEscape(secret)) // the Basic header's value, and its base64
	}
	return s
}

func (c *Client) once(ctx context.Context, endpoint, body string, scrub *redact.Scrubber, proof string) (*Response, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("oauthclient: bad endpoint %s", redact.URL(endpoint))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if proof != "" {
		req.Header.Set(auth.DPoPHeader, proof)
	}
	if c.style == AuthBasic {
		cred := url.QueryEscape(c.clientID) + ":" + url.QueryEscape(c.secret.Reveal())
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(cred)))
	}
	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the URL, query included
		}
		return nil, fmt.Errorf("oauthclient: POST %s: %w", redact.URL(endpoint), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodySize+1))
	if err != nil {
		return nil, fmt.Errorf("oauthclient: read answer of %s: %w", redact.URL(endpoint), err)
	}
	if len(data) > MaxBodySize {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, &auth.ResponseError{
			StatusCode:  resp.StatusCode,
			ContentType: resp.Header.Get("Content-Type"),
			Excerpt:     redact.Excerpt(data, scrub),
			Reason:      fmt.Sprintf("body exceeds %d bytes", MaxBodySize),
		}
	}
	return &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code >= 500
}

// retryableCode reports whether an OAuth error sent with a 429 or 5xx status
// may be retried: only the server's own trouble. Anything else (slow_down,
// authorization_pending, invalid_grant...) is an answer for the caller.
func retryableCode(code string) bool {
	return code == "server_error" || code == "temporarily_unavailable"
}

// bytesTrim is bytes.TrimSpace, named for readability at the call sites.
func bytesTrim(b []byte) []byte { return bytes.TrimSpace(b) }

// UserAgent is the User-Agent the client sends.
func (c *Client) UserAgent() string { return c.ua }
