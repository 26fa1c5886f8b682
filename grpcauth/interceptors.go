package grpcauth

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/redact"
)

// Unary is a [grpc.UnaryClientInterceptor]. When the server answers
// codes.Unauthenticated to credentials that c sent, it invalidates them
// (auth.Invalidator) and makes the call once more with fresh metadata; a
// second Unauthenticated reaches the caller. A call that failed before any
// credential was sent (the handler could not produce one, the channel was
// refused) is not retried. The server rejected the call before running it,
// so the retry is safe for every method.
func (c *Credentials) Unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if c.inv == nil || !c.retry {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	first := c.sending(ctx)
	err := invoker(ctx, method, req, reply, cc, opts...)
	if !c.invalidate(err, first, method) {
		return err
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// sending returns the metadata the call is about to carry: the handler's
// current, cached values, which GetRequestMetadata hands out an instant
// later (a token replaced in between makes a late invalidation the handler
// ignores). Nil when the handler has none: then no credential goes out,
// and there is nothing to invalidate.
func (c *Credentials) sending(ctx context.Context) map[string]string {
	md, err := c.src.MessageServiceMetadata(ctx)
	if err != nil {
		return nil
	}
	return md
}

// Stream is a [grpc.StreamClientInterceptor]. A stream that fails with
// codes.Unauthenticated before it received any message is re-opened once
// with fresh metadata, transparently: the messages sent so far (at most
// ClientConfig.MaxReplay) are sent again, and CloseSend is repeated. A
// second Unauthenticated reaches the caller.
func (c *Credentials) Stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if c.inv == nil || !c.retry {
		return streamer(ctx, desc, cc, method, opts...)
	}
	first := c.sending(ctx)
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		if !c.invalidate(err, first, method) {
			return nil, err
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
	return &retryStream{
		c: c, ctx: ctx, desc: desc, cc: cc, method: method, streamer: streamer, opts: opts,
		cs: cs, first: first, armed: true,
	}, nil
}

// invalidate reports whether err is the server's rejection of the
// credentials md that c sent, and if so invalidates them.
func (c *Credentials) invalidate(err error, md map[string]string, method string) bool {
	if status.Code(err) != codes.Unauthenticated || md == nil {
		return false // nil md: no credential went out, nothing to refresh
	}
	v, ok := md[c.key]
	if !ok && len(md) == 1 {
		for _, only := range md { // the handler's one entry, whatever its name
			v = only
		}
	}
	// An entry not found invalidates unconditionally.
	c.inv.Invalidate(auth.ServiceMessageService, v)
	if c.log.Enabled(context.Background(), slog.LevelInfo) {
		c.log.LogAttrs(context.Background(), slog.LevelInfo, "grpcauth: the server rejected the credentials; retrying once with new ones",
			slog.String("method", method), slog.String("reason", scrubbed(status.Convert(err).Message(), md)))
	}
	return true
}

// scrubbed returns a server's message without the credentials sent (a
// server may echo them), bounded and without token-like runs.
func scrubbed(msg string, sent map[string]string) string {
	var s redact.Scrubber
	for _, v := range sent {
		s.Add(v)
		if _, tok, ok := strings.Cut(v, " "); ok { // "Bearer <token>": the token alone too
			s.Add(tok)
		}
	}
	return redact.Text(msg, redact.ExcerptSize, &s)
}

// retryStream is a client stream that re-opens itself once after the server
// rejected its credentials before sending any message.
type retryStream struct {
	c        *Credentials
	ctx      context.Context
	desc     *grpc.StreamDesc
	cc       *grpc.ClientConn
	method   string
	streamer grpc.Streamer
	opts     []grpc.CallOption

	mu     sync.Mutex        // guards the fields below; never held while waiting on the server
	cs     grpc.ClientStream // the current attempt
	gen    int               // counts re-opens
	first  map[string]string // credentials of the first attempt
	armed  bool              // a re-open is still possible
	msgs   []any             // messages sent while armed, to replay
	closed bool              // CloseSend was called
}

// SendMsg sends m on the current attempt and keeps it for a replay while a
// re-open is possible.
func (s *retryStream) SendMsg(m any) error {
	s.mu.Lock()
	cs, gen, kept := s.cs, s.gen, false
	if s.armed {
		if len(s.msgs) < s.c.maxReplay {
			s.msgs = append(s.msgs, m)
			kept = true
		} else {
			s.disarmLocked()
		}
	}
	s.mu.Unlock()
	err := cs.SendMsg(m)
	if err != io.EOF || !kept {
		return err
	}
	// The attempt ended. RecvMsg tells why; if the credentials were
	// rejected, m goes out again on the next attempt.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.armed || s.gen != gen {
		return nil
	}
	return err
}

// CloseSend half-closes the current attempt and remembers it for a replay.
func (s *retryStream) CloseSend() error {
	s.mu.Lock()
	s.closed = true
	cs := s.cs
	s.mu.Unlock()
	return cs.CloseSend()
}

// RecvMsg receives from the current attempt, re-opening the stream once if
// the server rejected the credentials before sending anything.
func (s *retryStream) RecvMsg(m any) error {
	s.mu.Lock()
	cs := s.cs
	s.mu.Unlock()
	err := cs.RecvMsg(m)
	if err == nil {
		s.mu.Lock()
		s.disarmLocked()
		s.mu.Unlock()
		return nil
	}
	cs, err = s.reopen(cs, err)
	if cs == nil {
		return err
	}
	return cs.RecvMsg(m)
}

// reopen replaces the failed attempt old when its error is a rejection of
// the credentials and a re-open is still possible. It returns the new
// attempt, or nil and the error for the caller.
func (s *retryStream) reopen(old grpc.ClientStream, err error) (grpc.ClientStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.armed || old != s.cs {
		return nil, err
	}
	msgs := s.msgs
	s.disarmLocked()
	if !s.c.invalidate(err, s.first, s.method) {
		return nil, err
	}
	cs, nerr := s.streamer(s.ctx, s.desc, s.cc, s.method, s.opts...)
	if nerr != nil {
		return nil, nerr
	}
	s.cs = cs
	s.gen++
	for _, m := range msgs {
		if err := cs.SendMsg(m); err != nil {
			if err == io.EOF {
				return cs, nil // the attempt ended; its RecvMsg says why
			}
			return nil, err
		}
	}
	if s.closed {
		if err := cs.CloseSend(); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

func (s *retryStream) disarmLocked() {
	s.armed = false
	s.msgs = nil
}

func (s *retryStream) current() grpc.ClientStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cs
}

// Header returns the header metadata of the current attempt.
func (s *retryStream) Header() (metadata.MD, error) { return s.current().Header() }

// Trailer returns the trailer metadata of the current attempt.
func (s *retryStream) Trailer() metadata.MD { return s.current().Trailer() }

// Context returns the context of the current attempt.
func (s *retryStream) Context() context.Context { return s.current().Context() }
