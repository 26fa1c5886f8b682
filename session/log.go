package session

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// checkRetry is retryablehttp's CheckRetry: the caller's ctx, credential
// errors and requests that may be sent only once first, then the policy.
// ctx is the context of the attempt that just ended.
func (s *Session) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	a := ctx.(*attempt)
	if err != nil && s.log != nil {
		attrs := []any{"error", stripURL(err).Error()}
		var ue *url.Error
		if errors.As(err, &ue) {
			attrs = append(attrs, "url", redactString(ue.URL))
			if u, perr := url.Parse(ue.URL); perr == nil {
				attrs = append(attrs, "service", s.serviceOf(u).String())
			}
		}
		s.log.Debug("session: attempt failed", attrs...)
	}
	if cerr := a.c.ctx.Err(); cerr != nil {
		if err != nil && errors.Is(err, cerr) {
			return false, err // it says what the caller waited for (TestCallerDeadlineKeepsTheCause)
		}
		return false, cerr
	}
	if err != nil && permanent(err) || !s.policy(resp, err) {
		return false, nil
	}
	if a.c.once {
		if resp != nil {
			return false, errSentOnce // giveUp turns the status into a *StatusError
		}
		return false, nil
	}
	// The wait before the next attempt is bounded by the caller's context
	// only: go-retryablehttp waits on its request's context.
	a.c.rr.Request = a.c.rr.Request.WithContext(a.c)
	return true, nil
}

// wait is retryablehttp's Backoff: the configured Backoff, capped.
func (s *Session) wait(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	d := clampWait(s.backoff(min, max, attempt, resp), s.waitMax)
	s.stats.retries.Add(1)
	if s.log != nil {
		attrs := []any{"attempt", attempt + 2, "wait", d}
		if resp != nil {
			attrs = append(attrs, "status", resp.StatusCode)
			if r := resp.Request; r != nil {
				attrs = append(attrs, "method", r.Method, "url", RedactURL(r.URL), "service", s.serviceOf(r.URL).String())
			}
		}
		s.log.Info("session: retrying", attrs...)
	}
	return d
}

// logAttempt is retryablehttp's RequestLogHook.
func (s *Session) logAttempt(_ retryablehttp.Logger, req *http.Request, attempt int) {
	if !s.log.Enabled(req.Context(), slog.LevelDebug) {
		return
	}
	s.log.LogAttrs(req.Context(), slog.LevelDebug, "session: sending",
		slog.String("method", req.Method), slog.String("url", RedactURL(req.URL)),
		slog.String("service", s.serviceOf(req.URL).String()), slog.Int("attempt", attempt+1))
}

// logResponse is retryablehttp's ResponseLogHook. After redirects the
// request is the last hop's.
func (s *Session) logResponse(_ retryablehttp.Logger, resp *http.Response) {
	req := resp.Request
	if req == nil || !s.log.Enabled(req.Context(), slog.LevelDebug) {
		return
	}
	s.log.LogAttrs(req.Context(), slog.LevelDebug, "session: response",
		slog.String("method", req.Method), slog.String("url", RedactURL(req.URL)),
		slog.String("service", s.serviceOf(req.URL).String()), slog.Int("status", resp.StatusCode))
}
