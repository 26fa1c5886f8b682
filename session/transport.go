package session

import (
	"context"
	"io"
	"net/http"
	"time"
)

// transport is the RoundTripper under the retrying clients: for every hop
// it decides the service, copies the request with the service's
// credentials and the User-Agent, bounds the attempt, and replays once
// after a 401.
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
	resp, err := s.send(req, req.Body, creds)
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

// send sends a copy of req with body and creds, under the attempt timeout.
func (s *Session) send(req *http.Request, body io.ReadCloser, creds http.Header) (*http.Response, error) {
	ctx := req.Context()
	if s.timeout > 0 {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > s.timeout {
			return s.sendTimed(req, body, creds)
		}
	}
	_, hasUA := req.Header["User-Agent"]
	if len(creds) == 0 && hasUA && body == req.Body {
		return s.base.RoundTrip(req)
	}
	// One allocation holds the copy of the request and its header values.
	o := new(outgoing)
	o.req = *req // the same ctx: no need for WithContext
	o.req.Body = body
	o.req.Header = o.header(req.Header, creds, s.ua, hasUA)
	return s.base.RoundTrip(&o.req)
}

// sendTimed is send with a deadline for this attempt, released when the
// response body is closed.
func (s *Session) sendTimed(req *http.Request, body io.ReadCloser, creds http.Header) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), s.timeout)
	out := req.WithContext(ctx)
	out.Body = body
	_, hasUA := req.Header["User-Agent"]
	a := &timedBody{cancel: cancel}
	out.Header = a.header(req.Header, creds, s.ua, hasUA)
	resp, err := s.base.RoundTrip(out)
	if err != nil {
		cancel()
		return nil, err
	}
	a.ReadCloser = resp.Body
	resp.Body = a
	return resp, nil
}

// outgoing is a request copy with room for its header values.
type outgoing struct {
	req http.Request
	headerValues
}

// headerValues is room for the header values of a request copy, so that a
// typical request needs no allocation for them.
type headerValues struct {
	vals [6]string
}

// header returns a new header map holding copies of src's values, the
// credentials (which replace same-named values of src) and, unless src
// has one, the User-Agent. src and creds are not modified.
func (hv *headerValues) header(src, creds http.Header, ua []string, hasUA bool) http.Header {
	// Each map is walked once; vals outgrows the inline room only for
	// requests with many header values (sub-slices already taken stay valid).
	vals := hv.vals[:0:len(hv.vals)]
	h := make(http.Header, len(src)+len(creds)+1)
	for k, vv := range src {
		if _, ok := creds[k]; ok {
			continue // the credential replaces the caller's value
		}
		vals = append(vals, vv...)
		h[k] = vals[len(vals)-len(vv) : len(vals) : len(vals)]
	}
	for k, vv := range creds {
		vals = append(vals, vv...)
		h[http.CanonicalHeaderKey(k)] = vals[len(vals)-len(vv) : len(vals) : len(vals)]
	}
	if !hasUA {
		vals = append(vals, ua...)
		h["User-Agent"] = vals[len(vals)-len(ua) : len(vals) : len(vals)]
	}
	return h
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

// timedBody ends an attempt's deadline when its response body is closed.
// It also holds the attempt's header values.
type timedBody struct {
	io.ReadCloser
	cancel context.CancelFunc
	headerValues
}

// Close closes the body and releases the attempt's timer.
func (b *timedBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
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
