// Package otelauth reports what authkit's engines and handlers do on their
// slow paths to OpenTelemetry: set [New]'s Observer as
// handlers.OAuthConfig.Observer (or auth.EngineConfig.Observer,
// handlers.ExternallyManagedJWTConfig.Observer). It uses only
// OpenTelemetry's API; the application chooses the SDK. It is a package of
// its own so that a program that does not want telemetry does not link
// OpenTelemetry (about 0.7 MB).
//
// Spans:
//   - authkit.token.fetch: one fetch, its attempts included (an event per
//     failed attempt), with authkit.handler, authkit.fetch.reason
//     (refresh, expired, rejected) and authkit.fetch.attempts;
//   - authkit.token.wait: a caller waiting for a fetch, a child of the
//     caller's span;
//   - authkit.store.load, .save, .delete, .lock: store operations;
//   - authkit.token.revoke: a logout's revocations;
//   - authkit.login: a person's device or browser login.
//
// Metrics:
//   - authkit.token.fetch.attempts (counter), by authkit.outcome: ok,
//     transient, terminal, login_required, cancelled;
//   - authkit.token.refreshes (counter): fetches started early;
//   - authkit.token.wait.duration (histogram, s): how long callers waited;
//   - authkit.token.reads (counter; with [CountCachedReads] only), by
//     authkit.read: cache (served at once from the cached token) or wait
//     (the caller waited for a fetch); the share served from the cache is
//     reads{cache} / reads. Without it, the count of requests an
//     application already measures (otelhttp, otelgrpc) gives that share
//     with the wait durations' count;
//   - authkit.store.duration (histogram, s), by authkit.store.operation
//     and authkit.outcome.
//
// No attribute, event or status holds a token, code, key or secret: they
// carry names, counts, outcomes and OAuth error codes, never an error's
// text (internal/telemetrytest plants secrets and looks for them).
package otelauth

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/authkit-go/authkit/auth"
)

const instrumentationName = "github.com/authkit-go/authkit"

// Attribute keys.
const (
	attrHandler   = attribute.Key("authkit.handler")
	attrReason    = attribute.Key("authkit.fetch.reason")
	attrOutcome   = attribute.Key("authkit.outcome")
	attrAttempt   = attribute.Key("authkit.fetch.attempt")
	attrAttempts  = attribute.Key("authkit.fetch.attempts")
	attrOperation = attribute.Key("authkit.store.operation")
	attrErrorKind = attribute.Key("error.type")
	attrRead      = attribute.Key("authkit.read")
)

// observer is an auth.Observer on OpenTelemetry.
type observer struct {
	tracer    trace.Tracer
	attempts  metric.Int64Counter
	refreshes metric.Int64Counter
	waits     metric.Float64Histogram
	store     metric.Float64Histogram

	mu    sync.Mutex        // guards reads
	reads map[string]*reads // nil unless reads are counted
}

// readObserver is an observer that counts reads (CountCachedReads).
type readObserver struct{ *observer }

// An Option changes what [New]'s Observer reports.
type Option func(*options)

type options struct{ countReads bool }

// CountCachedReads makes the Observer count the reads each engine serves
// from its cache, reported as authkit.token.reads beside the reads that
// waited. It is off by default because it is the one measurement on the
// path every request takes: an atomic add per read, on a counter each
// engine keeps, read back when the SDK collects. Measured on 2 cores
// (BenchmarkRequestCredentials): a cached read 6.4 → 9.1 ns with one
// goroutine, and 3.2 → 18 ns with readers on both cores at once, which
// contend for the counter; RequestHeaders 8.4 → 11 ns. The Observer
// holds each engine's counter (not the engine) until the engine is
// closed: an engine never closed stays counted.
func CountCachedReads() Option { return func(o *options) { o.countReads = true } }

// reads counts one handler name's reads, over all its engines.
type reads struct {
	engines map[*func() uint64]struct{} // the open engines' counts
	closed  uint64                      // the reads of engines closed since
	waits   uint64
}

// New returns an Observer that reports to tp and mp; nil means
// OpenTelemetry's global providers (which do nothing until an SDK is
// installed, and forward to one installed later). One Observer serves any
// number of handlers: each names itself (authkit.handler).
func New(tp trace.TracerProvider, mp metric.MeterProvider, opts ...Option) auth.Observer {
	var cfg options
	for _, opt := range opts {
		opt(&cfg)
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(instrumentationName, metric.WithInstrumentationVersion(auth.Version))
	o := &observer{tracer: tp.Tracer(instrumentationName, trace.WithInstrumentationVersion(auth.Version))}
	// Instrument errors mean a misconfigured SDK; the no-op instrument
	// returned with them keeps the handlers working.
	o.attempts, _ = m.Int64Counter("authkit.token.fetch.attempts", metric.WithDescription("Token fetch attempts, by outcome."))
	o.refreshes, _ = m.Int64Counter("authkit.token.refreshes", metric.WithDescription("Token fetches started early, in the background."))
	o.waits, _ = m.Float64Histogram("authkit.token.wait.duration", metric.WithUnit("s"),
		metric.WithDescription("How long callers waited for a token that was not cached."))
	o.store, _ = m.Float64Histogram("authkit.store.duration", metric.WithUnit("s"), metric.WithDescription("Token store operations."))
	if !cfg.countReads {
		return o
	}
	o.reads = map[string]*reads{}
	_, _ = m.Int64ObservableCounter("authkit.token.reads", metric.WithInt64Callback(o.observeReads),
		metric.WithDescription("Reads of a token: served from the cache, or waited for."))
	return readObserver{o}
}

// handlerReads is handler's count, made on first use; o.mu is held.
func (o *observer) handlerReads(handler string) *reads {
	r := o.reads[handler]
	if r == nil {
		r = &reads{engines: map[*func() uint64]struct{}{}}
		o.reads[handler] = r
	}
	return r
}

// ObserveReads counts an engine's cached reads until it is closed; what
// it served then stays in the count.
func (o readObserver) ObserveReads(handler string, cached func() uint64) (stop func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.handlerReads(handler)
	r.engines[&cached] = struct{}{}
	return func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		if _, ok := r.engines[&cached]; ok {
			delete(r.engines, &cached)
			r.closed += cached()
		}
	}
}

// observeReads reports the reads of every handler name.
func (o *observer) observeReads(_ context.Context, obs metric.Int64Observer) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for handler, r := range o.reads {
		cached := r.closed
		for count := range r.engines {
			cached += (*count)()
		}
		h := attrHandler.String(handler)
		obs.Observe(int64(cached), metric.WithAttributes(h, attrRead.String("cache")))
		obs.Observe(int64(r.waits), metric.WithAttributes(h, attrRead.String("wait")))
	}
	return nil
}

// outcome names how an attempt or an operation ended.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, auth.ErrLoginRequired):
		return "login_required"
	case auth.IsTransient(err):
		return "transient" // a request's own timeout included
	case errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	}
	return "terminal"
}

// errorKind is an error's kind for a span: the OAuth error code when
// there is one (a fixed word, never the provider's text), else the
// outcome.
func errorKind(err error) string {
	var oe *auth.OAuthError
	if errors.As(err, &oe) && oe.Code != "" && len(oe.Code) <= 64 {
		return oe.Code
	}
	return outcome(err)
}

// endSpan ends span with err's outcome.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.SetAttributes(attrErrorKind.String(errorKind(err)))
		span.SetStatus(codes.Error, outcome(err))
	}
	span.End()
}

// Fetch starts the span of a fetch.
func (o *observer) Fetch(ctx context.Context, handler, reason string) (context.Context, auth.FetchObserver) {
	h := attrHandler.String(handler)
	if reason == "refresh" {
		o.refreshes.Add(ctx, 1, metric.WithAttributes(h))
	}
	ctx, span := o.tracer.Start(ctx, "authkit.token.fetch", trace.WithAttributes(h, attrReason.String(reason)))
	return ctx, &fetch{o: o, ctx: ctx, span: span, handler: h}
}

// fetch follows one fetch.
type fetch struct {
	o        *observer
	ctx      context.Context
	span     trace.Span
	handler  attribute.KeyValue
	attempts int
}

func (f *fetch) Attempt(n int, err error) {
	f.attempts = n
	f.o.attempts.Add(f.ctx, 1, metric.WithAttributes(f.handler, attrOutcome.String(outcome(err))))
	if err != nil {
		f.span.AddEvent("attempt failed", trace.WithAttributes(attrAttempt.Int(n), attrOutcome.String(outcome(err)), attrErrorKind.String(errorKind(err))))
	}
}

func (f *fetch) End(err error) {
	f.span.SetAttributes(attrAttempts.Int(f.attempts))
	endSpan(f.span, err)
}

// Wait starts the span of a caller's wait, under the caller's span.
func (o *observer) Wait(ctx context.Context, handler string) func(error) {
	if o.reads != nil {
		o.mu.Lock()
		o.handlerReads(handler).waits++
		o.mu.Unlock()
	}
	h := attrHandler.String(handler)
	_, span := o.tracer.Start(ctx, "authkit.token.wait", trace.WithAttributes(h))
	start := time.Now()
	return func(err error) {
		o.waits.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(h, attrOutcome.String(outcome(err))))
		endSpan(span, err)
	}
}

// Op starts the span of a store operation, a revocation or a login.
func (o *observer) Op(ctx context.Context, handler, op string) (context.Context, func(error)) {
	h := attrHandler.String(handler)
	name := "authkit." + op
	if op == "revoke" {
		name = "authkit.token.revoke"
	}
	ctx, span := o.tracer.Start(ctx, name, trace.WithAttributes(h))
	start := time.Now()
	return ctx, func(err error) {
		if storeOp, ok := strings.CutPrefix(op, "store."); ok {
			o.store.Record(ctx, time.Since(start).Seconds(),
				metric.WithAttributes(h, attrOperation.String(storeOp), attrOutcome.String(outcome(err))))
		}
		endSpan(span, err)
	}
}
