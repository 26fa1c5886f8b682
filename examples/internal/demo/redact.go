// Package demo holds the plumbing the examples share: masking credentials
// in what they print (every line an example writes shows at most the
// harmless start of a JWT, its header "eyJhbGci", and never a secret) and
// calling the platform's HTTP services.
package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc"
)

// Value masks a credential value: "Bearer eyJhbGciOi..." becomes
// "Bearer eyJhbGci…(redacted)"; any other secret becomes "…(redacted)".
func Value(v string) string {
	prefix := ""
	if scheme, rest, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "bearer") {
		prefix, v = scheme+" ", rest
	}
	if strings.HasPrefix(v, "eyJ") && len(v) > 16 {
		return prefix + v[:8] + "…(redacted)"
	}
	return prefix + "…(redacted)"
}

// IsID reports whether a header or metadata name carries an identifier
// rather than a secret (e.g. "X-Api-Key-Id"), so it may be shown.
func IsID(name string) bool { return strings.HasSuffix(strings.ToLower(name), "-id") }

// Fields renders credential fields as "name: value" pairs, sorted, each
// value masked unless IsID says it is an identifier.
func Fields[V string | []string](m map[string]V) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	parts := make([]string, 0, len(names))
	for _, k := range names {
		var v string
		switch x := any(m[k]).(type) {
		case string:
			v = x
		case []string:
			v = strings.Join(x, ",")
		}
		if !IsID(k) {
			v = Value(v)
		}
		parts = append(parts, k+": "+v)
	}
	return strings.Join(parts, "; ")
}

// credentialHeaders are the request headers Transport shows (masked).
var credentialHeaders = []string{"Authorization", "X-Api-Key-Id", "X-Api-Key"}

// Transport is an http.RoundTripper that prints each request it sends,
// credentials masked, and the answer's status. Give it to
// session.Config.Transport: it then sees the headers the session added.
type Transport struct {
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// Out receives the lines.
	Out *Out
	// Tag prefixes each line, e.g. "[password]".
	Tag string
}

// RoundTrip prints the request, sends it, and prints the status.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	creds := map[string][]string{}
	for _, h := range credentialHeaders {
		if v := req.Header.Values(h); len(v) > 0 {
			creds[h] = v
		}
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	outcome := ""
	if err != nil {
		outcome = "error: " + err.Error()
	} else {
		outcome = resp.Status
	}
	t.Out.Printf("%s %s %s  {%s}  -> %s\n", t.Tag, req.Method, req.URL.Redacted(), Fields(creds), outcome)
	return resp, err
}

// Out serializes the lines of concurrent writers (handlers call back on
// their own goroutines).
type Out struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

// NewOut returns an Out that writes to w.
func NewOut(w io.Writer) *Out { return &Out{w: w} }

// Write writes p whole, so that a logger can share the output.
func (o *Out) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Write(p)
}

// Printf writes one formatted piece of output.
func (o *Out) Printf(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, format, args...)
}

// UnaryInterceptor returns a gRPC client interceptor that prints each RPC
// with the metadata md returns just before it (the per-RPC credentials the
// call carries, unless a retry after Unauthenticated replaced them),
// masked, and the call's outcome.
func UnaryInterceptor(out *Out, tag string, md func(context.Context) (map[string]string, error)) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		fields := ""
		if m, err := md(ctx); err != nil {
			fields = "no credentials: " + err.Error()
		} else {
			fields = Fields(m)
		}
		err := invoker(ctx, method, req, reply, cc, opts...)
		outcome := "OK"
		if err != nil {
			outcome = err.Error()
		}
		out.Printf("%s RPC %s %s  {%s}  -> %s\n", tag, cc.Target(), method, fields, outcome)
		return err
	}
}
