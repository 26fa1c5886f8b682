package otelauth_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/auth/otelauth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/handlers"
	"github.com/authkit-go/authkit/internal/fakeclock"
	"github.com/authkit-go/authkit/internal/fakeclock/bubble"
)

// fakeGrant issues tokens on a fake clock, after failing with fail's
// errors in order.
type fakeGrant struct {
	clock    *fakeclock.Clock
	lifetime time.Duration
	prefix   string
	mu       sync.Mutex
	calls    int
	fail     []error
}

func (g *fakeGrant) fetch(_ context.Context, _ *auth.Token) (*auth.Token, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	if len(g.fail) > 0 {
		err := g.fail[0]
		g.fail = g.fail[1:]
		return nil, err
	}
	return &auth.Token{AccessToken: auth.NewSecret(fmt.Sprintf("%saccess-%d", g.prefix, g.calls)), TokenType: "Bearer",
		Expiry: g.clock.Now().Add(g.lifetime)}, nil
}

// transientErr is a network error worth retrying.
type transientErr struct{}

func (transientErr) Error() string   { return "connection reset by peer" }
func (transientErr) Timeout() bool   { return false }
func (transientErr) Temporary() bool { return true }

var _ net.Error = transientErr{}

func newEngine(t *testing.T, g *fakeGrant, mod func(*auth.EngineConfig)) *auth.Engine {
	t.Helper()
	cfg := auth.EngineConfig{Fetch: g.fetch, Clock: g.clock}
	mod(&cfg)
	e, err := auth.NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func readHub(e *auth.Engine, ctx context.Context) (string, error) {
	h, err := e.HubRequestHeaders(ctx)
	if err != nil {
		return "", err
	}
	return h.Get("Authorization"), nil
}

// read reads on a goroutine of its own; the channel receives the result.
func read(e *auth.Engine, ctx context.Context) chan error {
	c := make(chan error, 1)
	go func() {
		_, err := readHub(e, ctx)
		c <- err
	}()
	return c
}

// advanceUntil runs the engine's timers until done (see
// bubble.AdvanceWhenBlocked).
func advanceUntil(t *testing.T, clock *fakeclock.Clock, done func() bool) {
	t.Helper()
	if !bubble.AdvanceWhenBlocked(clock, done) {
		t.Fatal("nothing left to wait for, and not done")
	}
}

// observed is an engine wired to in-memory OpenTelemetry exporters.
type observed struct {
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	tp     *sdktrace.TracerProvider
}

func newObserved() *observed {
	o := &observed{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	o.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.spans))
	return o
}

func (o *observed) observer(opts ...otelauth.Option) auth.Observer {
	return otelauth.New(o.tp, sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader)), opts...)
}

func (o *observed) config(c *auth.EngineConfig) {
	c.Name = "test"
	c.Observer = o.observer()
}

func (o *observed) span(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, s := range o.spans.Ended() {
		if s.Name() == name {
			return s
		}
	}
	t.Fatalf("no span %q among %d", name, len(o.spans.Ended()))
	return nil
}

func attr(kvs []attribute.KeyValue, key string) string {
	for _, kv := range kvs {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// metrics returns every data point's attributes and value, by metric name.
func (o *observed) metrics(t *testing.T) map[string][]point {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := o.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string][]point{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{dp.Attributes, float64(dp.Value), 0})
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{dp.Attributes, dp.Sum, dp.Count})
				}
			}
		}
	}
	return out
}

type point struct {
	attrs attribute.Set
	value float64
	count uint64
}

func sum(points []point, key, value string) float64 {
	var n float64
	for _, p := range points {
		if v, ok := p.attrs.Value(attribute.Key(key)); ok && v.String() == value {
			n += p.value
		}
	}
	return n
}

// TestTelemetryOfAWaitAndARetriedFetch: a caller whose token expired waits
// (a span under the caller's, a wait duration) for one fetch that fails
// twice transiently and then succeeds (one fetch span, reason expired, an
// event per failed attempt, attempts counted by outcome); the store's
// operations are spans and durations. Nothing reported holds the planted
// secrets of the tokens.
func TestTelemetryOfAWaitAndARetriedFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newObserved()
		clock := fakeclock.New(time.Time{})
		g := &fakeGrant{clock: clock, lifetime: time.Hour, prefix: "SECRET-"}
		g.fail = []error{transientErr{}, transientErr{}}
		e := newEngine(t, g, func(c *auth.EngineConfig) {
			o.config(c)
			c.Store = &auth.MemoryStore{}
			c.StoreKey = auth.StoreKey{Issuer: "https://idp.example", ClientID: "cli"}
		})
		ctx, parent := o.tp.Tracer("app").Start(context.Background(), "request")
		got := read(e, ctx)
		advanceUntil(t, clock, func() bool { return len(got) > 0 })
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		parent.End()

		wait := o.span(t, "authkit.token.wait")
		if wait.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Error("the wait span is not a child of the caller's span")
		}
		fetch := o.span(t, "authkit.token.fetch")
		if attr(fetch.Attributes(), "authkit.fetch.reason") != "expired" || attr(fetch.Attributes(), "authkit.fetch.attempts") != "3" ||
			attr(fetch.Attributes(), "authkit.handler") != "test" || fetch.Status().Code == codes.Error {
			t.Errorf("fetch span attributes %v, status %v", fetch.Attributes(), fetch.Status())
		}
		if n := len(fetch.Events()); n != 2 || attr(fetch.Events()[0].Attributes, "authkit.outcome") != "transient" {
			t.Errorf("fetch span events %v, want 2 failed attempts", fetch.Events())
		}
		o.span(t, "authkit.store.load")
		o.span(t, "authkit.store.save")

		m := o.metrics(t)
		if a := m["authkit.token.fetch.attempts"]; sum(a, "authkit.outcome", "transient") != 2 || sum(a, "authkit.outcome", "ok") != 1 {
			t.Errorf("attempts %v", a)
		}
		if w := m["authkit.token.wait.duration"]; len(w) != 1 || w[0].count != 1 {
			t.Errorf("wait durations %v", w)
		}
		if s := m["authkit.store.duration"]; len(s) == 0 {
			t.Errorf("store durations %v", s)
		}
		noSecret(t, o, m)
	})
}

// TestTelemetryOfATerminalFailure: a refused refresh ends the fetch span
// in error with the OAuth error code as error.type — not the provider's
// description, which may echo anything.
func TestTelemetryOfATerminalFailure(t *testing.T) {
	o := newObserved()
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Hour}
	g.fail = []error{&auth.OAuthError{Code: "invalid_grant", Description: "refresh token SECRET-rt-1 was revoked"}}
	e := newEngine(t, g, o.config)
	if _, err := readHub(e, context.Background()); err == nil {
		t.Fatal("no error")
	}
	fetch := o.span(t, "authkit.token.fetch")
	if fetch.Status().Code != codes.Error || attr(fetch.Attributes(), "error.type") != "invalid_grant" {
		t.Errorf("status %v, attributes %v", fetch.Status(), fetch.Attributes())
	}
	m := o.metrics(t)
	if sum(m["authkit.token.fetch.attempts"], "authkit.outcome", "terminal") != 1 {
		t.Errorf("attempts %v", m["authkit.token.fetch.attempts"])
	}
	noSecret(t, o, m)
}

// reads is the authkit.token.reads of handler, served as read says.
func reads(points []point, handler, read string) float64 {
	for _, p := range points {
		h, _ := p.attrs.Value("authkit.handler")
		r, _ := p.attrs.Value("authkit.read")
		if h.AsString() == handler && r.AsString() == read {
			return p.value
		}
	}
	return -1
}

// TestTelemetryOfReadsServedFromTheCache: authkit.token.reads counts, per
// handler name over all its engines, the reads served from the cache and
// the reads that waited for a fetch, so that the share served from the
// cache is reads{cache} / reads. A closed engine's reads stay counted (the
// counter never goes down). Without CountCachedReads nothing is counted.
func TestTelemetryOfReadsServedFromTheCache(t *testing.T) {
	plain := newObserved()
	plainObs := plain.observer()
	e := newEngine(t, &fakeGrant{clock: fakeclock.New(time.Time{}), lifetime: time.Hour}, func(c *auth.EngineConfig) {
		c.Name, c.Observer = "test", plainObs
	})
	for range 3 {
		if _, err := readHub(e, context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := plainObs.(auth.ReadObserver); ok {
		t.Error("New without CountCachedReads made a ReadObserver: cached reads pay for a count")
	}
	if m := plain.metrics(t)["authkit.token.reads"]; m != nil {
		t.Errorf("reads counted without CountCachedReads: %v", m)
	}

	o := newObserved()
	obs := o.observer(otelauth.CountCachedReads())
	clock := fakeclock.New(time.Time{})
	engine := func(name string) *auth.Engine {
		return newEngine(t, &fakeGrant{clock: clock, lifetime: time.Hour}, func(c *auth.EngineConfig) {
			c.Name, c.Observer = name, obs
		})
	}
	readN := func(e *auth.Engine, n int) {
		t.Helper()
		for range n {
			if _, err := readHub(e, context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	a1, a2, b := engine("a"), engine("a"), engine("b")
	readN(a1, 6) // a wait, then 5 from the cache
	readN(a2, 4)
	if _, err := a2.MessageServiceMetadata(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := a2.RequestHeaders(context.Background(), auth.ServiceAccessManager, http.MethodGet, &url.URL{Scheme: "https", Host: "am.example"}, ""); err != nil {
		t.Fatal(err)
	}
	readN(b, 3)
	want := map[[2]string]float64{{"a", "cache"}: 10, {"a", "wait"}: 2, {"b", "cache"}: 2, {"b", "wait"}: 1}
	check := func() {
		t.Helper()
		m := o.metrics(t)["authkit.token.reads"]
		for k, v := range want {
			if got := reads(m, k[0], k[1]); got != v {
				t.Errorf("reads{handler=%s, read=%s} = %v, want %v", k[0], k[1], got, v)
			}
		}
	}
	check()
	a1.Close()
	check()
	readN(a2, 1)
	want[[2]string{"a", "cache"}]++
	check()
	if _, err := readHub(a1, context.Background()); !errors.Is(err, auth.ErrClosed) {
		t.Errorf("a closed engine read: %v, want ErrClosed", err)
	}
	check()

	// A handler passes the Observer to its engine as it is: counted too.
	p := authtest.NewProvider(authtest.ProviderConfig{Clients: []authtest.Client{{ID: "svc", Secret: "s"}}})
	defer p.Close()
	h, err := handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: handlers.OAuthConfig{
		Endpoints: handlers.Endpoints{Issuer: p.Issuer()}, ClientID: "svc", ClientSecret: auth.NewSecret("s"), Observer: obs}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for range 4 {
		if _, err := h.HubRequestHeaders(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	want[[2]string{"ClientCredentials", "cache"}], want[[2]string{"ClientCredentials", "wait"}] = 3, 1
	check()
}

// noSecret fails if any span attribute, event, status or metric attribute
// holds "SECRET".
func noSecret(t *testing.T, o *observed, m map[string][]point) {
	t.Helper()
	var all []string
	for _, s := range o.spans.Ended() {
		all = append(all, s.Name(), s.Status().Description)
		for _, kv := range s.Attributes() {
			all = append(all, kv.Value.String())
		}
		for _, ev := range s.Events() {
			all = append(all, ev.Name)
			for _, kv := range ev.Attributes {
				all = append(all, kv.Value.String())
			}
		}
	}
	for _, points := range m {
		for _, p := range points {
			for _, kv := range p.attrs.ToSlice() {
				all = append(all, kv.Value.String())
			}
		}
	}
	if s := strings.Join(all, "\n"); strings.Contains(s, "SECRET") {
		t.Errorf("telemetry holds a planted secret:\n%s", s)
	}
}

// TestTelemetryOfADeviceLogin: a person's login is the span authkit.login
// with the handler's kind; the user code and URLs are in no attribute.
func TestTelemetryOfADeviceLogin(t *testing.T) {
	o := newObserved()
	p := authtest.NewProvider(authtest.ProviderConfig{Clients: []authtest.Client{{ID: "cli"}},
		Users: []authtest.User{{Username: "ada", Password: "pw"}}, DeviceInterval: 10 * time.Millisecond})
	defer p.Close()
	var code string
	h, err := handlers.NewDeviceCode(handlers.DeviceCodeConfig{
		OAuthConfig: handlers.OAuthConfig{Endpoints: handlers.Endpoints{Issuer: p.Issuer()}, ClientID: "cli", Observer: o.observer()},
		Prompt: func(_ context.Context, dp handlers.DevicePrompt) error {
			code = dp.UserCode
			return p.ApproveDevice(dp.UserCode, "ada")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Authenticate(ctx); err != nil {
		t.Fatal(err)
	}
	login := o.span(t, "authkit.login")
	if attr(login.Attributes(), "authkit.handler") != "DeviceCode" || login.Status().Code == codes.Error {
		t.Errorf("login span %v, %v", login.Attributes(), login.Status())
	}
	for _, kv := range login.Attributes() {
		if code != "" && strings.Contains(kv.Value.String(), code) {
			t.Errorf("the user code is in %s", kv.Key)
		}
	}
}

// TestTelemetryOfABackgroundRefresh: a token read past its refresh time is
// refreshed in the background: a fetch span with reason refresh, the
// refreshes counter, and no wait (the caller got the still valid token).
func TestTelemetryOfABackgroundRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newObserved()
		clock := fakeclock.New(time.Time{})
		g := &fakeGrant{clock: clock, lifetime: time.Minute, prefix: "SECRET-"}
		e := newEngine(t, g, o.config)
		if _, err := readHub(e, context.Background()); err != nil {
			t.Fatal(err)
		}
		clock.Jump(55 * time.Second) // past the refresh time (54 s), before expiry
		if _, err := readHub(e, context.Background()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		var reasons []string
		for _, s := range o.spans.Ended() {
			if s.Name() == "authkit.token.fetch" {
				reasons = append(reasons, attr(s.Attributes(), "authkit.fetch.reason"))
			}
		}
		if len(reasons) != 2 || reasons[0] != "expired" || reasons[1] != "refresh" {
			t.Errorf("fetch reasons %q, want the first fetch (expired) and a refresh", reasons)
		}
		m := o.metrics(t)
		if r := m["authkit.token.refreshes"]; len(r) != 1 || r[0].value != 1 {
			t.Errorf("refreshes %v", r)
		}
		if w := m["authkit.token.wait.duration"]; len(w) != 1 || w[0].count != 1 {
			t.Errorf("waits %v: only the first read waits", w)
		}
		noSecret(t, o, m)
	})
}
