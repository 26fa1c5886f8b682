package session

import (
	"io"
	"net/http"
	"strings"

	"github.com/authkit-go/authkit/auth"
)

// transport is the RoundTripper under the retrying client: for every hop
// of every attempt it decides the service, sets the service's credentials
// and sends the request, and replays it once after a 401.
type transport struct{ s *Session }

// RoundTrip sends one hop of one attempt.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	s := t.s
	s.stats.attempts.Add(1)
	svc := s.serviceOf(req.URL)
	var (
		creds http.Header
		nonce string // the DPoP nonce a proof in creds carries
	)
	if svc != serviceNone {
		h, n, err := s.credentials(req, svc)
		if err != nil {
			closeBody(req.Body)
			return nil, err
		}
		creds, nonce = h, n
	}
	var (
		resp *http.Response
		err  error
	)
	if a, ok := req.Context().(*attempt); ok && a.out == req {
		// The attempt's own copy of the caller's request: its header map
		// is the session's.
		a.out = nil
		a.fill(req.Header, creds)
		resp, err = s.base.RoundTrip(req)
	} else {
		// A redirect hop that http.Client made: copy it.
		resp, err = s.send(req, req.Body, creds)
	}
	if err != nil || len(creds) == 0 {
		return resp, err
	}
	if _, proved := creds[dpopHeader]; proved {
		got := s.keepNonce(svc, resp)
		if resp.StatusCode == http.StatusUnauthorized && askedForNonce(resp) {
			if got != "" && got != nonce {
				return s.replayWithNonce(req, svc, resp)
			}
			return resp, nil // asked for a nonce without handing out another: not the token's fault
		}
	}
	if resp.StatusCode != http.StatusUnauthorized || s.inv == nil {
		return resp, err
	}
	return s.reauthenticate(req, svc, creds, resp)
}

// dpopHeader is the canonical key of a DPoP proof in an http.Header.
var dpopHeader = http.CanonicalHeaderKey(auth.DPoPHeader)

// keepNonce records the DPoP nonce resp hands out, if any, for the
// requests to svc, and returns it ("" for none).
func (s *Session) keepNonce(svc service, resp *http.Response) string {
	v := resp.Header.Get(auth.DPoPNonceHeader)
	if v == "" || len(v) > 512 {
		return ""
	}
	if old := s.nonces[svc].Load(); old == nil || *old != v {
		s.nonces[svc].Store(&v)
	}
	return v
}

// nonce is the DPoP nonce svc handed out last, or "".
func (s *Session) nonce(svc service) string {
	if p := s.nonces[svc].Load(); p != nil {
		return *p
	}
	return ""
}

// askedForNonce reports whether a 401 says that the proof lacked the
// server's nonce (https://www.rfc-editor.org/rfc/rfc9449#section-9): an
// error auth-param of use_dpop_nonce, quoted or not.
func askedForNonce(resp *http.Response) bool {
	for _, v := range resp.Header.Values("WWW-Authenticate") {
		if strings.Contains(v, `error="use_dpop_nonce"`) || strings.Contains(v, "error=use_dpop_nonce") {
			return true
		}
	}
	return false
}

// replayWithNonce replays req once with a new proof carrying the nonce
// that svc just handed out: the credential was not rejected, so nothing is
// invalidated. A 401 to the replay that rejects the credential itself
// goes the 401 way (reauthenticate); any other answer to the caller.
func (s *Session) replayWithNonce(req *http.Request, svc service, resp *http.Response) (*http.Response, error) {
	if !rewindable(req) {
		return resp, nil // the body is spent; the next request carries the nonce
	}
	fresh, _, err := s.credentials(req, svc)
	if err != nil {
		drain(resp.Body)
		return nil, err
	}
	out, err := s.replay(req, fresh, resp)
	if err != nil {
		return out, err
	}
	s.keepNonce(svc, out)
	if out.StatusCode == http.StatusUnauthorized && s.inv != nil && !askedForNonce(out) {
		return s.reauthenticate(req, svc, fresh, out)
	}
	return out, nil
}

// replay sends req once more with fresh credentials, its body rewound,
// after the answer resp, which it discards.
func (s *Session) replay(req *http.Request, fresh http.Header, resp *http.Response) (*http.Response, error) {
	body := req.Body
	if req.GetBody != nil {
		var err error
		if body, err = req.GetBody(); err != nil {
			drain(resp.Body)
			return nil, err
		}
	}
	drain(resp.Body)
	s.stats.attempts.Add(1)
	return s.send(req, body, fresh)
}

// credentials asks the handler for the headers of svc with the request's
// ctx, and returns the DPoP nonce they were asked for with.
func (s *Session) credentials(req *http.Request, svc service) (http.Header, string, error) {
	var (
		h     http.Header
		nonce string
		err   error
	)
	switch {
	case s.ra != nil:
		nonce = s.nonce(svc)
		h, err = s.ra.RequestHeaders(req.Context(), svc.auth(), req.Method, req.URL, nonce)
	case svc == serviceHub:
		h, err = s.handler.HubRequestHeaders(req.Context())
	default:
		h, err = s.handler.AccessManagerRequestHeaders(req.Context())
	}
	if err != nil {
		return nil, "", &CredentialError{Service: svc.String(), Err: err}
	}
	return h, nonce, nil
}

// reauthenticate handles a 401 to a request that carried creds: it reports
// them rejected, asks for fresh ones and replays the request once. The
// replay's answer, 401 or not, goes to the caller.
func (s *Session) reauthenticate(req *http.Request, svc service, creds http.Header, resp *http.Response) (*http.Response, error) {
	for k, vv := range creds {
		if k == dpopHeader {
			continue // a proof, not the credential
		}
		for _, v := range vv {
			s.inv.Invalidate(svc.auth(), v)
		}
	}
	if !rewindable(req) {
		return resp, nil // the body is spent; the next request gets fresh credentials
	}
	fresh, _, err := s.credentials(req, svc)
	if err != nil {
		drain(resp.Body)
		return nil, err
	}
	if sameCredentials(fresh, creds) {
		return resp, nil // replaying the rejected credential cannot help
	}
	s.stats.reauths.Add(1)
	if s.log != nil {
		s.log.Info("session: credential rejected (401); replaying once with fresh credentials",
			"method", req.Method, "url", RedactURL(req.URL), "service", svc.String())
	}
	return s.replay(req, fresh, resp)
}

// send sends a copy of req with body and creds.
func (s *Session) send(req *http.Request, body io.ReadCloser, creds http.Header) (*http.Response, error) {
	// One allocation holds the copy of the request and its header values.
	o := new(outgoing)
	o.req = *req
	o.req.Body = body
	o.req.Header = o.header(req.Header, creds, s.ua)
	return s.base.RoundTrip(&o.req)
}

// outgoing is a request copy with room for its header values.
type outgoing struct {
	req http.Request
	headerValues
}

// sameCredentials reports whether a and b hold the same values, DPoP
// proofs aside (each request has its own).
func sameCredentials(a, b http.Header) bool {
	_, pa := a[dpopHeader]
	_, pb := b[dpopHeader]
	if len(a) != len(b) || pa != pb {
		return false
	}
	for k, av := range a {
		if k == dpopHeader {
			continue
		}
		bv, ok := b[k]
		if !ok || len(av) != len(bv) {
			return false
		}
		for i := range av {
			if av[i] != bv[i] {
				return false
			}
		}
	}
	return true
}

// drain reads a little of a body that is thrown away, so that its
// connection can be reused, and closes it.
func drain(body io.ReadCloser) {
	if body == nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 4096))
	body.Close()
}

func closeBody(body io.ReadCloser) {
	if body != nil {
		body.Close()
	}
}
