package handlers

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

// TestHandlersPrintSafely prints handlers under every fmt verb and through
// slog's text and JSON handlers while their engines refresh in the
// background (issue 21, item 1). Run with -race: before handlers formatted
// themselves, fmt walked into the engine's state by reflection while its
// goroutines wrote it, and the race detector stopped the test. Nothing
// printed holds a secret.
func TestHandlersPrintSafely(t *testing.T) {
	p := newProvider(t, nil, func(c *authtest.ProviderConfig) { c.AccessTokenLifetime = time.Second })
	cc, err := NewClientCredentials(ClientCredentialsConfig{OAuthConfig{
		Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "svc", ClientSecret: auth.NewSecret(svcSecret),
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	n := 0
	jwt, err := NewExternallyManagedJWT(ExternallyManagedJWTConfig{
		Callback: func(context.Context) (string, time.Time, error) {
			n++
			return fmt.Sprintf("jwt-SECRET-%d", n), time.Now().Add(time.Second), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer jwt.Close()
	keys, err := NewAPIKeys(APIKeysConfig{KeyID: "id", Key: auth.NewSecret("key-SECRET"), Username: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	sel := &Selected{AuthenticationHandler: cc, Source: "test"}
	printed := []any{cc, jwt, keys, sel}
	var out bytes.Buffer
	text := slog.New(slog.NewTextHandler(&out, nil))
	js := slog.New(slog.NewJSONHandler(&out, nil))
	ctx := context.Background()
	for end := time.Now().Add(20 * time.Second); cc.Stats().Refreshes < 2 && time.Now().Before(end); {
		cc.HubRequestHeaders(ctx)  //nolint:errcheck // keeps the engine refreshing
		jwt.HubRequestHeaders(ctx) //nolint:errcheck
		for _, v := range printed {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
				fmt.Fprintf(&out, verb+"\n", v)
			}
			text.Info("handler", "h", v)
			js.Info("handler", "h", v)
		}
		time.Sleep(time.Millisecond) // pacing the loop, not synchronising
	}
	if cc.Stats().Refreshes < 2 {
		t.Fatalf("the engine did not refresh while printed: %+v", cc.Stats())
	}
	s := out.String()
	if strings.Contains(s, "SECRET") || strings.Contains(s, svcSecret) {
		t.Fatal("a secret was printed")
	}
	for _, want := range []string{"handlers.ClientCredentials{auth.Engine{valid until", "handlers.ExternallyManagedJWT{", "handlers.APIKeys{user: \"ada\", static}"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q; first lines:\n%.400s", want, s)
		}
	}
}

// TestEveryHandlerFormatsItself: every handler type, the workload ones
// included, has the one-line Format and LogValue of TestHandlersPrintSafely,
// so that no printing walks into its engine.
func TestEveryHandlerFormatsItself(t *testing.T) {
	for _, h := range []any{(*APIKeys)(nil), (*BrowserLogin)(nil), (*ClientCredentials)(nil), (*DeviceCode)(nil),
		(*ExternallyManagedJWT)(nil), (*JWTBearer)(nil), (*Password)(nil), (*RefreshToken)(nil), (*TokenExchange)(nil),
		(*PrivateKeyJWT)(nil)} {
		_, f := h.(fmt.Formatter)
		_, l := h.(slog.LogValuer)
		if !f || !l {
			t.Errorf("%T: Format %t, LogValue %t", h, f, l)
		}
	}
}
