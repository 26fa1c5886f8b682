package session

import (
	"io"
	"net/http"
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
	var creds http.Header
	if svc != serviceNone {
		h, err := s.credentials(req, svc)
		if err != nil {
			closeBody(req.Body)
			return nil, err
		}
		creds = h
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
	if err != nil || resp.StatusCode != http.StatusUnauthorized || len(creds) == 0 || s.inv == nil {
		return resp, err
	}
	return s.reauthenticate(req, svc, creds, resp)
}

// credentials asks the handler for the headers of svc with the request's ctx.
func (s *Session) credentials(req *http.Request, svc service) (http.Header, error) {
	var (
		h   http.Header
		err error
	)
	if svc == serviceHub {
		h, err = s.handler.HubRequestHeaders(req.Context())
	} else {
		h, err = s.handler.AccessManagerRequestHeaders(req.Context())
	}
	if err != nil {
		return nil, &CredentialError{Service: svc.String(), Err: err}
	}
	return h, nil
}

// reauthenticate handles a 401 to a request that carried creds: it reports
// them rejected, asks for fresh ones and replays the request once. The
// replay's answer, 401 or not, goes to the caller.
func (s *Session) reauthenticate(req *http.Request, svc service, creds http.Header, resp *http.Response) (*http.Response, error) {
	for _, vv := range creds {
		for _, v := range vv {
			s.inv.Invalidate(svc.auth(), v)
		}
	}
	if !rewindable(req) {
		return resp, nil // the body is spent; the next request gets fresh credentials
	}
	fresh, err := s.credentials(req, svc)
	if err != nil {
		drain(resp.Body)
		return nil, err
	}
	if sameHeaders(fresh, creds) {
		return resp, nil // replaying the rejected credential cannot help
	}
	body := req.Body
	if req.GetBody != nil {
		if body, err = req.GetBody(); err != nil {
			drain(resp.Body)
			return nil, err
		}
	}
	drain(resp.Body)
	s.stats.reauths.Add(1)
	s.stats.attempts.Add(1)
	if s.log != nil {
		s.log.Info("session: credential rejected (401); replaying once with fresh credentials",
			"method", req.Method, "url", RedactURL(req.URL), "service", svc.String())
	}
	return s.send(req, body, fresh)
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

// sameHeaders reports whether a and b hold the same values.
func sameHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, av := range a {
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
