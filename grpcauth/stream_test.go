package grpcauth_test

import (
	"bytes"
	"crypto"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/grpcauth"
)

// collect is a client-streaming method: it answers the messages it
// received, joined with "+", once the client half-closes.
var collectDesc = grpc.StreamDesc{StreamName: "Collect", ClientStreams: true}

type collector struct {
	mu  sync.Mutex // guards got
	got [][]string // messages of each accepted stream
}

func (c *collector) register(s *grpc.Server) {
	desc := collectDesc
	desc.Handler = func(_ any, ss grpc.ServerStream) error {
		var msgs []string
		for {
			m := new(wrapperspb.StringValue)
			err := ss.RecvMsg(m)
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			msgs = append(msgs, m.GetValue())
		}
		c.mu.Lock()
		c.got = append(c.got, msgs)
		c.mu.Unlock()
		return ss.SendMsg(wrapperspb.String(strings.Join(msgs, "+")))
	}
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "authkit.test.Collector",
		HandlerType: (*any)(nil),
		Streams:     []grpc.StreamDesc{desc},
	}, struct{}{})
}

func TestClientStreamReplay(t *testing.T) {
	rejectFirst := func(v string) bool { return v == "Bearer tok-1" }
	tests := []struct {
		name      string
		msgs      []string
		maxReplay int
		reject    func(string) bool
		want      string
		wantCode  codes.Code
		wantFetch int64
	}{
		{name: "accepted", msgs: []string{"a", "b", "c"}, want: "a+b+c", wantFetch: 1},
		{name: "rejected once, replayed", msgs: []string{"a", "b", "c"}, reject: rejectFirst, want: "a+b+c", wantFetch: 2},
		{name: "rejected once, too many to replay", msgs: []string{"a", "b", "c"}, maxReplay: 2, reject: rejectFirst,
			wantCode: codes.Unauthenticated, wantFetch: 1},
		{name: "rejected twice", msgs: []string{"a"}, reject: func(string) bool { return true },
			wantCode: codes.Unauthenticated, wantFetch: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newTokens(authtest.NewClock(time.Time{}))
			eng := newEngine(t, src, auth.Wire{})
			rec := &recorder{key: "authorization", reject: tt.reject}
			col := &collector{}
			c := insecureLocalConn(t, eng, grpcauth.ClientConfig{MaxReplay: tt.maxReplay},
				bufServerWith(t, col.register, rec.options()...))

			cs, err := c.NewStream(t.Context(), &collectDesc, "/authkit.test.Collector/Collect")
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tt.msgs {
				if err := cs.SendMsg(wrapperspb.String(m)); err != nil && err != io.EOF {
					t.Fatal(err)
				}
			}
			if err := cs.CloseSend(); err != nil {
				t.Fatal(err)
			}
			reply := new(wrapperspb.StringValue)
			err = cs.RecvMsg(reply)
			if got := status.Code(err); got != tt.wantCode {
				t.Fatalf("code %v (%v), want %v", got, err, tt.wantCode)
			}
			if reply.GetValue() != tt.want {
				t.Errorf("reply %q, want %q", reply.GetValue(), tt.want)
			}
			if n := src.n.Load(); n != tt.wantFetch {
				t.Errorf("%d fetches, want %d", n, tt.wantFetch)
			}
			col.mu.Lock()
			defer col.mu.Unlock()
			if tt.wantCode == codes.OK && (len(col.got) != 1 || !slices.Equal(col.got[0], tt.msgs)) {
				t.Errorf("server received %q, want one stream of %q", col.got, tt.msgs)
			}
		})
	}
}

func TestRefusalsAreLoggedWithoutSecrets(t *testing.T) {
	ks := rsaKeys()
	clk := authtest.NewClock(time.Time{})
	jv, err := grpcauth.NewJWTValidator(grpcauth.JWTConfig{Issuer: issuer, Audience: audience,
		Keys: map[string]crypto.PublicKey{"k1": &ks[0].PublicKey}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := grpcauth.NewAPIKeyValidator(grpcauth.APIKeyConfig{Lookup: keyStore(map[string]*grpcauth.APIKey{"id": {Secret: auth.NewSecret("the-real-secret")}})})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	si, err := grpcauth.NewServerInterceptors(grpcauth.ServerConfig{Validator: grpcauth.ValidatorList{jv, kv}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := authServer(t, si)
	forged := sign(t, jwt.SigningMethodRS256, ks[1], "k1", goodClaims(clk.Now(), nil))
	for _, md := range [][]string{
		{"authorization", "Bearer " + forged},
		{"x-api-key-id", "id", "x-api-key", "guessed-secret"},
	} {
		_, err := c.Check(metadata.AppendToOutgoingContext(t.Context(), md...), &healthpb.HealthCheckRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("got %v", err)
		}
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if strings.Count(out, "grpcauth: call refused") != 2 {
		t.Errorf("want two refusals logged:\n%s", out)
	}
	for _, secret := range []string{forged, strings.Split(forged, ".")[2], "guessed-secret", "the-real-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log shows a secret %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "verification error") {
		t.Errorf("the log should say why the signature failed (the caller is not told):\n%s", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
