package authtest

import (
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// faults is the fault-injection state; Provider.mu guards it.
type faults struct {
	latency    time.Duration
	queued     map[string][]fault // by endpoint path
	chaos      map[string]Chaos   // by endpoint path
	injected   int                // failures answered by chaos
	slowDowns  int
	omitRefesh bool
}

// Chaos makes an endpoint behave as a provider under load does: every
// answer is delayed by a random time up to MaxLatency (real time), and a
// random share FailureRate of the requests fails with one of Statuses and a
// text/plain body, as a proxy in front of the provider answers.
type Chaos struct {
	// FailureRate is the share of requests that fail, in [0, 1].
	FailureRate float64
	// Statuses are the failure statuses, picked at random; empty means
	// 500, 502 and 503.
	Statuses []int
	// MaxLatency bounds the random delay of each answer.
	MaxLatency time.Duration
}

// SetChaos applies c to the requests of endpoint (e.g. [EndpointToken]); the
// zero Chaos removes it. Chaos applies before queued faults (FailNext).
func (p *Provider) SetChaos(endpoint string, c Chaos) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.faults.chaos == nil {
		p.faults.chaos = make(map[string]Chaos)
	}
	if c.FailureRate == 0 && c.MaxLatency == 0 {
		delete(p.faults.chaos, endpoint)
		return
	}
	p.faults.chaos[endpoint] = c
}

// ChaosFailures returns how many requests chaos failed so far.
func (p *Provider) ChaosFailures() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults.injected
}

// applyChaos delays and maybe fails the request as the endpoint's Chaos
// says; it reports whether it answered.
func (p *Provider) applyChaos(w http.ResponseWriter, r *http.Request) bool {
	p.mu.Lock()
	c, ok := p.faults.chaos[r.URL.Path]
	fail := ok && rand.Float64() < c.FailureRate
	if fail {
		p.faults.injected++
	}
	p.mu.Unlock()
	if !ok {
		return false
	}
	if c.MaxLatency > 0 {
		t := time.NewTimer(rand.N(c.MaxLatency + 1))
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return true
		case <-p.done:
			http.Error(w, "provider closed", http.StatusServiceUnavailable)
			return true
		}
	}
	if !fail {
		return false
	}
	statuses := c.Statuses
	if len(statuses) == 0 {
		statuses = []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}
	}
	http.Error(w, "injected chaos", statuses[rand.N(len(statuses))])
	return true
}

// fault is one injected answer: an OAuth error or a raw body.
type fault struct {
	status      int
	oauthError  string
	raw         bool
	body        string
	contentType string
}

// SetLatency delays every answer by d of real time (not the provider's
// clock), so that a client's timeout or cancellation can be tested. A
// request whose context ends during the delay gets no answer. Zero removes
// the delay.
func (p *Provider) SetLatency(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults.latency = d
}

// FailNext makes the next n token endpoint requests fail with the HTTP
// status and {"error": oauthError, "error_description": "injected failure"}.
// An empty oauthError answers a text/plain body instead, like a proxy's
// error page. Failed requests are still counted.
func (p *Provider) FailNext(n int, status int, oauthError string) {
	p.FailNextAt(EndpointToken, n, status, oauthError)
}

// FailNextAt is [Provider.FailNext] for any endpoint path, e.g. [EndpointDeviceCode].
func (p *Provider) FailNextAt(endpoint string, n int, status int, oauthError string) {
	p.queue(endpoint, n, fault{status: status, oauthError: oauthError})
}

// MalformNext makes the next n token endpoint requests answer 200 with the
// raw body and Content-Type, for response-parser tests.
func (p *Provider) MalformNext(n int, body string, contentType string) {
	p.MalformNextAt(EndpointToken, n, body, contentType)
}

// MalformNextAt is [Provider.MalformNext] for any endpoint path.
func (p *Provider) MalformNextAt(endpoint string, n int, body string, contentType string) {
	p.queue(endpoint, n, fault{status: http.StatusOK, raw: true, body: body, contentType: contentType})
}

func (p *Provider) queue(endpoint string, n int, f fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.faults.queued == nil {
		p.faults.queued = make(map[string][]fault)
	}
	for range n {
		p.faults.queued[endpoint] = append(p.faults.queued[endpoint], f)
	}
}

// ForceSlowDown makes the next n device-code polls answer slow_down (and
// grow that device code's interval by 5 s, as a real slow_down does), even
// when the client waited long enough.
func (p *Provider) ForceSlowDown(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults.slowDowns += n
}

// OmitRefreshToken makes token answers carry no refresh_token while on. A
// refresh_token grant then leaves the presented refresh token valid, like a
// provider that does not rotate.
func (p *Provider) OmitRefreshToken(omit bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults.omitRefesh = omit
}

// ClearFaults removes the latency and every queued fault.
func (p *Provider) ClearFaults() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = faults{}
}

// applyFaults answers with the next queued fault of endpoint, if any, and
// reports whether it did.
func (p *Provider) applyFaults(w http.ResponseWriter, endpoint string) bool {
	p.mu.Lock()
	q := p.faults.queued[endpoint]
	if len(q) == 0 {
		p.mu.Unlock()
		return false
	}
	f := q[0]
	p.faults.queued[endpoint] = q[1:]
	p.mu.Unlock()
	switch {
	case f.raw:
		if f.contentType != "" {
			w.Header().Set("Content-Type", f.contentType)
		}
		w.WriteHeader(f.status)
		w.Write([]byte(f.body))
	case f.oauthError == "":
		http.Error(w, "injected failure", f.status)
	default:
		writeError(w, f.status, f.oauthError, "injected failure")
	}
	return true
}

// Counts is a snapshot of how many requests a [Provider] received.
type Counts struct {
	// Endpoints counts requests by path, e.g. [EndpointToken].
	Endpoints map[string]int
	// Grants counts token endpoint requests by grant_type, e.g.
	// [GrantRefreshToken]; a request without grant_type counts under "".
	Grants map[string]int
}

// Counts returns a snapshot of the request counters.
func (p *Provider) Counts() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Counts{Endpoints: maps.Clone(p.counts.Endpoints), Grants: maps.Clone(p.counts.Grants)}
}

// Requests returns how many requests reached the endpoint path, including
// those answered by injected faults.
func (p *Provider) Requests(endpoint string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts.Endpoints[endpoint]
}

// GrantRequests returns how many token endpoint requests named grant.
func (p *Provider) GrantRequests(grant string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts.Grants[grant]
}

// ResetCounts zeroes the counters and forgets the recorded requests.
func (p *Provider) ResetCounts() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts = Counts{Endpoints: map[string]int{}, Grants: map[string]int{}}
	clear(p.last)
}

// RecordedRequest is a request as the provider received it, for wire-format
// assertions. Form and Header hold secrets as sent; String, GoString,
// LogValue and so every fmt verb show only parameter names, so a recorded
// request (value or pointer) is safe to print or log.
type RecordedRequest struct {
	// Method is the HTTP method.
	Method string
	// Query is the URL query.
	Query url.Values
	// Form is the parsed application/x-www-form-urlencoded body.
	Form url.Values
	// Header is a copy of the request header, Authorization included.
	Header http.Header
	// ContentType is the request's Content-Type.
	ContentType string
	// AuthMethod is how the client authenticated: AuthMethodBasic,
	// AuthMethodPost, AuthMethodNone, AuthMethodPrivateKeyJWT (any client
	// assertion), or "basic+post" when it used both.
	AuthMethod string
	// ClientID is the client id presented, by whatever method.
	ClientID string
}

// String lists the method, auth method, client and parameter names, never values.
func (r RecordedRequest) String() string {
	return "RecordedRequest{" + r.Method + " auth=" + r.AuthMethod + " client=" + r.ClientID +
		" form=[" + strings.Join(slices.Sorted(maps.Keys(r.Form)), " ") + "]}"
}

// GoString is String, so that %#v does not print values either.
func (r RecordedRequest) GoString() string { return r.String() }

// LogValue logs the same as String.
func (r RecordedRequest) LogValue() slog.Value { return slog.StringValue(r.String()) }

// LastRequest returns the last request to the endpoint path, or nil.
func (p *Provider) LastRequest(endpoint string) *RecordedRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.last[endpoint]
	if r == nil {
		return nil
	}
	c := *r
	c.Query = cloneValues(r.Query)
	c.Form = cloneValues(r.Form)
	c.Header = r.Header.Clone()
	return &c
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	c := make(url.Values, len(v))
	for k, s := range v {
		c[k] = slices.Clone(s)
	}
	return c
}

// record parses the form and notes how the client authenticated.
func record(r *http.Request) *RecordedRequest {
	rec := &RecordedRequest{
		Method:      r.Method,
		Query:       cloneValues(r.URL.Query()),
		Header:      r.Header.Clone(),
		ContentType: r.Header.Get("Content-Type"),
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
		if err := r.ParseForm(); err == nil {
			rec.Form = cloneValues(r.PostForm)
		}
	}
	basicID, _, basic := basicAuth(r)
	_, post := rec.Form["client_secret"]
	_, assertion := rec.Form["client_assertion"]
	switch {
	case assertion && !basic && !post:
		rec.AuthMethod = AuthMethodPrivateKeyJWT
		rec.ClientID = rec.Form.Get("client_id")
	case basic && post:
		rec.AuthMethod = "basic+post"
		rec.ClientID = basicID
	case basic:
		rec.AuthMethod = AuthMethodBasic
		rec.ClientID = basicID
	case post:
		rec.AuthMethod = AuthMethodPost
		rec.ClientID = rec.Form.Get("client_id")
	default:
		rec.AuthMethod = AuthMethodNone
		rec.ClientID = rec.Form.Get("client_id")
	}
	return rec
}

// basicAuth decodes HTTP Basic credentials, form-decoding the id and the
// secret as https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1 requires.
// ok is true when an Authorization: Basic header is present, even if it is
// malformed (id is then empty).
func basicAuth(r *http.Request) (id, secret string, ok bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 6 || !strings.EqualFold(h[:6], "basic ") {
		return "", "", false
	}
	u, pw, good := r.BasicAuth()
	if !good {
		return "", "", true
	}
	id, err1 := url.QueryUnescape(u)
	secret, err2 := url.QueryUnescape(pw)
	if err1 != nil || err2 != nil {
		return "", "", true
	}
	return id, secret, true
}
