package session

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
)

// Session sends HTTP requests with the credentials of the service each one
// is addressed to, retrying and re-authenticating as the package
// documentation describes. It is safe for concurrent use.
type Session struct {
	handler  auth.AuthenticationHandler
	inv      auth.Invalidator          // nil when the handler cannot be told
	ra       auth.RequestAuthenticator // nil when the handler's credentials are never bound to a request
	nonces   [3]atomic.Pointer[string] // by service: the DPoP nonce it handed out last
	origins  []origin                  // longest path first
	base     http.RoundTripper
	ownsBase bool
	ua       []string // the User-Agent header value; shared, read-only
	timeout  time.Duration
	log      *slog.Logger // nil means silent
	policy   RetryPolicy
	backoff  Backoff
	waitMax  time.Duration

	// rc is the one retrying client of the session. Its http.Client
	// follows redirects through rt, so a retry repeats the whole chain.
	rc    *retryablehttp.Client
	rt    *transport
	slots *slots // attempt deadlines

	stats struct {
		requests, attempts, retries, reauths atomic.Int64
	}
}

// Stats counts what a session did.
type Stats struct {
	// Requests counts requests: calls of Do, directly or through HTTPClient.
	Requests int64
	// Attempts counts requests handed to the transport: every hop of every
	// attempt, 401 replays included.
	Attempts int64
	// Retries counts attempts after the first, 401 replays excluded.
	Retries int64
	// Reauthentications counts requests replayed after a 401 with fresh
	// credentials.
	Reauthentications int64
}

// New validates cfg and returns a session that authenticates requests with h.
func New(h auth.AuthenticationHandler, cfg Config) (*Session, error) {
	if h == nil {
		return nil, configError("a handler is required")
	}
	if cfg.HubURL == "" && cfg.AccessManagerURL == "" {
		return nil, configError("HubURL or AccessManagerURL is required")
	}
	if cfg.MaxRetries < 0 {
		return nil, configError("MaxRetries must not be negative (set DisableRetries to send once), got %d", cfg.MaxRetries)
	}
	if cfg.RetryWaitMin < 0 || cfg.RetryWaitMax < 0 {
		return nil, configError("RetryWaitMin and RetryWaitMax must not be negative")
	}
	s := &Session{handler: h, base: cfg.Transport, log: cfg.Logger, policy: cfg.RetryPolicy, backoff: cfg.Backoff}
	s.inv, _ = h.(auth.Invalidator)
	s.ra, _ = h.(auth.RequestAuthenticator)
	for _, c := range []struct {
		raw, field string
		svc        service
	}{{cfg.HubURL, "HubURL", serviceHub}, {cfg.AccessManagerURL, "AccessManagerURL", serviceAccessManager}} {
		if c.raw == "" {
			continue
		}
		o, err := parseOrigin(c.raw, c.svc, c.field, cfg.DangerousAllowInsecureHTTP)
		if err != nil {
			return nil, err
		}
		s.origins = append(s.origins, o)
	}
	if len(s.origins) == 2 {
		a, b := s.origins[0], s.origins[1]
		if a.scheme == b.scheme && a.host == b.host && a.port == b.port && a.path == b.path {
			return nil, configError("HubURL and AccessManagerURL must differ")
		}
		if len(b.path) > len(a.path) {
			s.origins[0], s.origins[1] = b, a
		}
	}
	waitMin, waitMax := cfg.RetryWaitMin, cfg.RetryWaitMax
	if waitMin == 0 {
		waitMin = DefaultRetryWaitMin
		if waitMax > 0 {
			waitMin = min(waitMin, waitMax)
		}
	}
	if waitMax == 0 {
		waitMax = max(DefaultRetryWaitMax, waitMin)
	}
	if waitMin > waitMax {
		return nil, configError("RetryWaitMin (%v) exceeds RetryWaitMax (%v)", waitMin, waitMax)
	}
	s.waitMax = waitMax
	retries := cfg.MaxRetries
	if retries == 0 {
		retries = DefaultMaxRetries
	}
	if cfg.DisableRetries {
		retries = 0
	}
	s.timeout = cfg.AttemptTimeout
	if s.timeout == 0 {
		s.timeout = DefaultAttemptTimeout
	}
	ua, err := auth.CheckUserAgent(cfg.UserAgent)
	if err != nil {
		return nil, configError("UserAgent must not contain control characters")
	}
	s.ua = []string{ua}
	if s.base == nil {
		s.base, s.ownsBase = cleanhttp.DefaultPooledTransport(), true
	}
	if s.policy == nil {
		s.policy = DefaultRetryPolicy
	}
	if s.backoff == nil {
		s.backoff = DefaultBackoff
	}
	s.rt = &transport{s: s}
	s.slots = newSlots(s.timeout)
	s.rc = &retryablehttp.Client{
		HTTPClient:   &http.Client{Transport: s.rt, CheckRedirect: cfg.CheckRedirect},
		RetryWaitMin: waitMin,
		RetryWaitMax: waitMax,
		RetryMax:     retries,
		CheckRetry:   s.checkRetry,
		Backoff:      s.wait,
		ErrorHandler: s.giveUp,
		PrepareRetry: s.retry,
	}
	if s.log != nil {
		s.rc.RequestLogHook = s.logAttempt
		s.rc.ResponseLogHook = s.logResponse
	}
	return s, nil
}

// Do sends req with the credentials of its service, retrying and
// re-authenticating as the package documentation says, and follows
// redirects. It never modifies req. The error is a [*StatusError] when the
// last allowed attempt still got a retryable status, else a
// [*RequestError] (errors.Is sees the cause, e.g. context.Canceled or
// auth.ErrLoginRequired). As with http.Client, the caller closes the body.
func (s *Session) Do(req *http.Request) (*http.Response, error) {
	if req == nil || req.URL == nil {
		return nil, &RequestError{Err: errors.New("nil request or URL")}
	}
	s.stats.requests.Add(1)
	c := s.newCall(req)
	resp, err := s.rc.Do(&c.rr)
	if err != nil {
		c.cur.release()
		return nil, s.describe(req, err)
	}
	if c.cur.cancel != nil {
		resp.Body = &releaseBody{ReadCloser: resp.Body, cancel: c.cur.cancel}
	}
	return resp, nil
}

// HTTPClient returns a plain *http.Client that sends every request through
// [Session.Do]: the same credentials per service (decided for every hop),
// retries, re-authentication and attempt timeout. Redirects are followed
// inside, as [Config.CheckRedirect] says; the returned client's own
// CheckRedirect sees only a redirect that policy chose not to follow
// (and by default hands it back). Set its Timeout to bound whole
// requests. As with any http.Client, its errors are *url.Error values that
// carry the request URL as net/http prints it — with its query — so do not
// put secrets in the query of such requests.
func (s *Session) HTTPClient() *http.Client {
	return &http.Client{Transport: (*roundTripper)(s), CheckRedirect: lastResponse}
}

// roundTripper is the RoundTripper of HTTPClient.
type roundTripper Session

// RoundTrip sends req through the session.
func (t *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	return (*Session)(t).Do(req)
}

func lastResponse(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Stats returns what the session did so far.
func (s *Session) Stats() Stats {
	return Stats{
		Requests:          s.stats.requests.Load(),
		Attempts:          s.stats.attempts.Load(),
		Retries:           s.stats.retries.Load(),
		Reauthentications: s.stats.reauths.Load(),
	}
}

// Close closes the idle connections of the session's own transport. It
// neither closes the handler nor a Config.Transport supplied by the caller,
// nor stops requests in flight. The session stays usable.
func (s *Session) Close() error {
	if s.ownsBase {
		if c, ok := s.base.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
	return nil
}

// serviceOf returns the service u is addressed to. It does not allocate.
func (s *Session) serviceOf(u *url.URL) service {
	for i := range s.origins {
		if s.origins[i].matches(u) {
			return s.origins[i].svc
		}
	}
	return serviceNone
}

// errSentOnce tells giveUp that the last status was worth retrying but the
// request may be sent only once.
var errSentOnce = errors.New("session: the request may be sent only once")

// giveUp is retryablehttp's ErrorHandler: it turns the last attempt into
// an error that carries the status, a redacted excerpt and no URL query.
func (s *Session) giveUp(resp *http.Response, err error, attempts int) (*http.Response, error) {
	if resp != nil {
		if err == nil || err == errSentOnce {
			se := &StatusError{StatusCode: resp.StatusCode, Attempts: attempts}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, excerptRead))
			var sent http.Header
			if resp.Request != nil {
				sent = resp.Request.Header
			}
			se.Excerpt = sanitizeExcerpt(b, sent)
			resp.Body.Close()
			return nil, se
		}
		resp.Body.Close()
	}
	return nil, &RequestError{Attempts: attempts, Err: stripURL(err)}
}

// describe completes an error of run with the request it belongs to.
func (s *Session) describe(req *http.Request, err error) error {
	svc := s.serviceOf(req.URL).String()
	var (
		se *StatusError
		re *RequestError
	)
	switch {
	case errors.As(err, &se):
		se.Method, se.URL, se.Service = req.Method, RedactURL(req.URL), svc
	case errors.As(err, &re):
		re.Method, re.URL, re.Service = req.Method, RedactURL(req.URL), svc
	default:
		err = &RequestError{Method: req.Method, URL: RedactURL(req.URL), Service: svc, Err: stripURL(err)}
	}
	if s.log != nil {
		s.log.Warn("session: request failed", "method", req.Method, "url", RedactURL(req.URL), "service", svc, "error", err.Error())
	}
	return err
}

// stripURL removes the *url.Error layers that net/http wraps around
// transport errors: they print the URL with its query.
func stripURL(err error) error {
	for {
		ue, ok := err.(*url.Error)
		if !ok || ue.Err == nil {
			return err
		}
		err = ue.Err
	}
}
