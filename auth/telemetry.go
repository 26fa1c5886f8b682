package auth

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry: an engine reports its slow paths — fetches, waits, store
// operations, revocations — through OpenTelemetry's API, to the
// TracerProvider and MeterProvider of its EngineConfig (by default the
// global ones, which do nothing until an application installs an SDK). A
// read served from the cache reports nothing: the getters' hot path is
// untouched.
//
// Spans:
//   - authkit.token.fetch: one fetch, its attempts included (an event per
//     failed attempt), with authkit.handler and authkit.fetch.reason
//     ("refresh": early, in the background; "expired": callers wait;
//     "rejected": a service refused the token);
//   - authkit.token.wait: a caller waiting for a fetch, a child of the
//     caller's span;
//   - authkit.store.load, .save, .delete, .lock: store operations;
//   - authkit.token.revoke: the revocations of a logout.
//
// Metrics:
//   - authkit.token.fetch.attempts (counter), by authkit.outcome: ok,
//     transient, terminal, login_required, cancelled;
//   - authkit.token.refreshes (counter): fetches started early;
//   - authkit.token.wait.duration (histogram, s): how long callers waited;
//     with the count of requests an application already measures
//     (otelhttp, otelgrpc), it gives the share served from the cache;
//   - authkit.store.duration (histogram, s), by authkit.store.operation
//     and authkit.outcome.
//
// No attribute, event or status holds a token, code, key or secret: they
// carry names, counts, outcomes and error kinds, never an error's text.
const instrumentationName = "github.com/authkit-go/authkit/auth"

// Attribute keys.
const (
	attrHandler   = attribute.Key("authkit.handler")
	attrReason    = attribute.Key("authkit.fetch.reason")
	attrOutcome   = attribute.Key("authkit.outcome")
	attrAttempt   = attribute.Key("authkit.fetch.attempt")
	attrAttempts  = attribute.Key("authkit.fetch.attempts")
	attrOperation = attribute.Key("authkit.store.operation")
	attrErrorKind = attribute.Key("error.type")
)

type telemetry struct {
	tracer    trace.Tracer
	handler   attribute.KeyValue
	attempts  metric.Int64Counter
	refreshes metric.Int64Counter
	waits     metric.Float64Histogram
	store     metric.Float64Histogram
}

// telemetries shares one telemetry on the global providers among the
// engines of one name: an engine holds a pointer, not its own instruments
// (a handler stays about a kilobyte: TestMemoryPerHandler).
var telemetries sync.Map // name -> *telemetry

// newTelemetry returns the telemetry of name on tp and mp (nil: the global
// providers, which forward to the SDK an application installs, even later).
func newTelemetry(name string, tp trace.TracerProvider, mp metric.MeterProvider) *telemetry {
	global := tp == nil && mp == nil
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if name == "" {
		name = "engine"
	}
	if !global {
		// A provider of the caller's may not be comparable, and a cache
		// would keep it alive: its engines get telemetry of their own.
		return makeTelemetry(name, tp, mp)
	}
	if t, ok := telemetries.Load(name); ok {
		return t.(*telemetry)
	}
	t, _ := telemetries.LoadOrStore(name, makeTelemetry(name, tp, mp))
	return t.(*telemetry)
}

func makeTelemetry(name string, tp trace.TracerProvider, mp metric.MeterProvider) *telemetry {
	m := mp.Meter(instrumentationName, metric.WithInstrumentationVersion(Version))
	t := &telemetry{tracer: tp.Tracer(instrumentationName, trace.WithInstrumentationVersion(Version)), handler: attrHandler.String(name)}
	// Instrument errors mean a misconfigured SDK; the no-op instrument
	// returned with them keeps the engine working.
	t.attempts, _ = m.Int64Counter("authkit.token.fetch.attempts", metric.WithDescription("Token fetch attempts, by outcome."))
	t.refreshes, _ = m.Int64Counter("authkit.token.refreshes", metric.WithDescription("Token fetches started early, in the background."))
	t.waits, _ = m.Float64Histogram("authkit.token.wait.duration", metric.WithUnit("s"),
		metric.WithDescription("How long callers waited for a token that was not cached."))
	t.store, _ = m.Float64Histogram("authkit.store.duration", metric.WithUnit("s"), metric.WithDescription("Token store operations."))
	return t
}

// outcome names how an attempt or an operation ended.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.Canceled), errors.Is(err, errSuperseded):
		return "cancelled"
	case errors.Is(err, ErrLoginRequired):
		return "login_required"
	case IsTransient(err):
		return "transient" // a request's own timeout included
	case errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	}
	return "terminal"
}

// errorKind is an error's kind for a span: the OAuth error code when
// there is one (a code is a fixed word, never the provider's text), else
// the outcome.
func errorKind(err error) string {
	var oe *OAuthError
	if errors.As(err, &oe) && oe.Code != "" && len(oe.Code) <= 64 {
		return oe.Code
	}
	return outcome(err)
}

// end ends span with err's outcome.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.SetAttributes(attrErrorKind.String(errorKind(err)))
		span.SetStatus(codes.Error, outcome(err))
	}
	span.End()
}

// attempt records one fetch attempt.
func (t *telemetry) attempt(ctx context.Context, span trace.Span, n int, err error) {
	t.attempts.Add(ctx, 1, metric.WithAttributes(t.handler, attrOutcome.String(outcome(err))))
	if err != nil {
		span.AddEvent("attempt failed", trace.WithAttributes(attrAttempt.Int(n), attrOutcome.String(outcome(err)), attrErrorKind.String(errorKind(err))))
	}
}

// storeOp times a store operation.
func (t *telemetry) storeOp(ctx context.Context, op string, f func(ctx context.Context) error) error {
	ctx, span := t.tracer.Start(ctx, "authkit.store."+op, trace.WithAttributes(t.handler))
	start := time.Now()
	err := f(ctx)
	t.store.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(t.handler, attrOperation.String(op), attrOutcome.String(outcome(err))))
	endSpan(span, err)
	return err
}

// tracedStore reports the operations of a Store.
type tracedStore struct {
	inner Store
	t     *telemetry
}

func (s tracedStore) Load(ctx context.Context, key StoreKey) (tok *Token, err error) {
	err = s.t.storeOp(ctx, "load", func(ctx context.Context) error {
		tok, err = s.inner.Load(ctx, key)
		return err
	})
	return tok, err
}

func (s tracedStore) Save(ctx context.Context, key StoreKey, tok *Token) error {
	return s.t.storeOp(ctx, "save", func(ctx context.Context) error { return s.inner.Save(ctx, key, tok) })
}

func (s tracedStore) Delete(ctx context.Context, key StoreKey) error {
	return s.t.storeOp(ctx, "delete", func(ctx context.Context) error { return s.inner.Delete(ctx, key) })
}

// tracedLocker reports the waits for a Locker's lock.
type tracedLocker struct {
	inner Locker
	t     *telemetry
}

func (l tracedLocker) Lock(ctx context.Context, key StoreKey) (unlock func(), err error) {
	err = l.t.storeOp(ctx, "lock", func(ctx context.Context) error {
		unlock, err = l.inner.Lock(ctx, key)
		return err
	})
	return unlock, err
}
