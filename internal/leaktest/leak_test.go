// Package leaktest holds the test that every exported type of authkit that
// holds a credential prints, logs and encodes without it.
package leaktest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/grpcauth"
	"github.com/authkit-go/authkit/handlers"
	"github.com/authkit-go/authkit/session"
)

// Planted secrets: every credential field below holds one of these.
const (
	clientSecret = "cs-PLANTED-3f9a1c7e5b2d4e6f"
	password     = "pw-PLANTED-correct-horse"
	totpSecret   = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	refreshTok   = "rt-PLANTED-8c1e2f3a4b5c6d7e"
	apiKey       = "ak-PLANTED-0a1b2c3d4e5f"
	jwtValue     = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJQTEFOVEVEIiwiZXhwIjo0MTAyNDQ0ODAwfQ.PLANTEDsig"
	hmacKey      = "hm-PLANTED-0123456789abcdef0123456789"
	accessTok    = "at-PLANTED-5e6f7a8b9c0d"
	idTok        = "id-PLANTED-1a2b3c4d5e6f"
	extraVal     = "ex-PLANTED-9f8e7d6c"
)

// leaks returns the forms in which secret must never appear.
func leaks(secret string) []string {
	return []string{
		secret,
		hex.EncodeToString([]byte(secret)),
		base64.StdEncoding.EncodeToString([]byte(secret)),
		base64.RawURLEncoding.EncodeToString([]byte(secret)),
		fmt.Sprintf("%q", secret)[1 : len(secret)+1],
	}
}

// renderings prints v in every way a program might: every fmt verb, slog's
// text and JSON handlers (alone, in a slice, a map and a struct), and
// encoding/json.
func renderings(v any) map[string]string {
	out := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		out[verb] = fmt.Sprintf(verb, v)
		out["in a slice "+verb] = fmt.Sprintf(verb, []any{v})
		out["in a map "+verb] = fmt.Sprintf(verb, map[string]any{"k": v})
		out["in a struct "+verb] = fmt.Sprintf(verb, struct{ V any }{v})
	}
	var text, js bytes.Buffer
	for _, l := range []*slog.Logger{slog.New(slog.NewTextHandler(&text, nil)), slog.New(slog.NewJSONHandler(&js, nil))} {
		l.Info("v", "v", v)
		l.Info("slice", "v", []any{v})
		l.Info("map", "v", map[string]any{"k": v})
		l.Info("struct", "v", struct{ V any }{v})
		l.Info("group", slog.Group("g", "v", v))
	}
	out["slog text"] = text.String()
	out["slog json"] = js.String()
	if b, err := json.Marshal(v); err == nil {
		out["encoding/json"] = string(b)
	}
	if b, err := json.Marshal(struct{ V any }{v}); err == nil {
		out["encoding/json in a struct"] = string(b)
	}
	return out
}

// storedToken is a store that holds one token under every key.
type storedToken struct{ tok *auth.Token }

func (s storedToken) Load(context.Context, auth.StoreKey) (*auth.Token, error) {
	return s.tok.Clone(), nil
}
func (s storedToken) Save(context.Context, auth.StoreKey, *auth.Token) error { return nil }
func (s storedToken) Delete(context.Context, auth.StoreKey) error            { return nil }

func TestNoTypePrintsASecret(t *testing.T) {
	ctx := context.Background()
	prov := authtest.NewProvider(authtest.ProviderConfig{
		Clients: []authtest.Client{{ID: "svc", Secret: clientSecret}, {ID: "cli"}},
		Users:   []authtest.User{{Username: "ada", Password: password, TOTPSecret: totpSecret}},
	})
	defer prov.Close()
	oauth := handlers.OAuthConfig{Endpoints: handlers.Endpoints{TokenURL: prov.TokenURL()}, ClientID: "svc", ClientSecret: auth.NewSecret(clientSecret)}
	token := &auth.Token{AccessToken: auth.NewSecret(accessTok), TokenType: "Bearer", RefreshToken: auth.NewSecret(refreshTok),
		IDToken: auth.NewSecret(idTok), Expiry: time.Now().Add(time.Hour), Extra: map[string]auth.Secret{"x": auth.NewSecret(extraVal)}}
	secrets := []string{clientSecret, password, totpSecret, refreshTok, apiKey, jwtValue, hmacKey, accessTok, idTok, extraVal}

	// A DPoP key: neither its private scalar nor its PKCS #8 form may show.
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	dpopKey, err := auth.NewDPoPKey(ecKey)
	must(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(ecKey)
	must(t, err)
	scalar, err := ecKey.Bytes()
	must(t, err)
	secrets = append(secrets, string(scalar), base64.RawStdEncoding.EncodeToString(der), new(big.Int).SetBytes(scalar).String())
	dpopOAuth := handlers.OAuthConfig{Endpoints: handlers.Endpoints{TokenURL: prov.TokenURL()}, ClientID: "svc", ClientSecret: auth.NewSecret(clientSecret), DPoPKey: dpopKey}
	dpopToken := token.Clone()
	dpopToken.TokenType, dpopToken.DPoPKey = "DPoP", dpopKey

	// Handlers with tokens in them.
	cc, err := handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: oauth})
	must(t, err)
	defer cc.Close()
	must(t, cc.Authenticate(ctx))
	pwCfg := handlers.PasswordConfig{OAuthConfig: handlers.OAuthConfig{Endpoints: handlers.Endpoints{TokenURL: prov.TokenURL()}, ClientID: "cli"},
		Username: "ada", Password: auth.NewSecret(password), TOTPSecret: auth.NewSecret(totpSecret)}
	pw, err := handlers.NewPassword(pwCfg)
	must(t, err)
	defer pw.Close()
	must(t, pw.Authenticate(ctx))
	rtCfg := handlers.RefreshTokenConfig{OAuthConfig: handlers.OAuthConfig{Endpoints: handlers.Endpoints{TokenURL: prov.TokenURL()}, ClientID: "cli"},
		RefreshToken: auth.NewSecret(refreshTok)}
	rt, err := handlers.NewRefreshToken(rtCfg)
	must(t, err)
	defer rt.Close()
	// As a login of an earlier run left it; without an issuer, so that its
	// made-up ID token is not verified.
	withStored := handlers.OAuthConfig{Endpoints: handlers.Endpoints{TokenURL: prov.TokenURL(), DeviceAuthorizationURL: prov.DeviceAuthorizationURL()},
		ClientID: "cli", Store: storedToken{token}}
	dc, err := handlers.NewDeviceCode(handlers.DeviceCodeConfig{OAuthConfig: withStored, NoBrowser: true})
	must(t, err)
	defer dc.Close()
	must(t, dc.Authenticate(ctx))
	jwtCfg := handlers.ExternallyManagedJWTConfig{JWT: auth.NewSecret(jwtValue),
		Callback: func(context.Context) (string, time.Time, error) { return jwtValue, time.Time{}, nil }}
	ext, err := handlers.NewExternallyManagedJWT(jwtCfg)
	must(t, err)
	defer ext.Close()
	keysCfg := handlers.APIKeysConfig{KeyID: "id-1", Key: auth.NewSecret(apiKey), Username: "bot"}
	keys, err := handlers.NewAPIKeys(keysCfg)
	must(t, err)
	for _, h := range []auth.AuthenticationHandler{cc, pw, keys, ext, dc} { // prepare every service's values
		h.HubRequestHeaders(ctx)
		h.AccessManagerRequestHeaders(ctx)
		h.MessageServiceMetadata(ctx)
	}
	for _, h := range []auth.TokenReader{cc, pw} {
		tok, err := h.Token(ctx)
		must(t, err)
		secrets = append(secrets, tok.AccessToken.Reveal(), tok.RefreshToken.Reveal())
	}

	// The engine and its pieces.
	engine, err := auth.NewEngine(auth.EngineConfig{Initial: token, Fetch: func(context.Context, *auth.Token) (*auth.Token, error) { return token, nil }})
	must(t, err)
	defer engine.Close()
	creds, err := engine.Credentials(ctx)
	must(t, err)
	creds.Hub()
	creds.MessageService()
	store := &auth.MemoryStore{}
	must(t, store.Save(ctx, auth.StoreKey{Issuer: "https://i"}, token))

	// The session and gRPC, over a handler holding a token.
	sess, err := session.New(pw, session.Config{HubURL: "https://hub.example"})
	must(t, err)
	rpc, err := grpcauth.NewCredentials(pw, grpcauth.ClientConfig{})
	must(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	jwtValCfg := grpcauth.JWTConfig{Issuer: "https://i", Audience: "a", Algorithms: []string{"HS256", "RS256"},
		Keys: map[string]crypto.PublicKey{"h": auth.NewSecret(hmacKey), "r": &rsaKey.PublicKey}}
	jwtVal, err := grpcauth.NewJWTValidator(jwtValCfg)
	must(t, err)
	defer jwtVal.Close()
	apiKeyCfg := grpcauth.APIKeyConfig{Lookup: func(context.Context, string) (*grpcauth.APIKey, error) {
		return &grpcauth.APIKey{Secret: auth.NewSecret(apiKey)}, nil
	}}
	apiVal, err := grpcauth.NewAPIKeyValidator(apiKeyCfg)
	must(t, err)

	values := map[string]any{
		"auth.Secret":                         auth.NewSecret(accessTok),
		"*auth.Token":                         token,
		"auth.Token":                          *token,
		"[]*auth.Token":                       []*auth.Token{token, token},
		"*auth.Credentials":                   creds,
		"*auth.Engine":                        engine,
		"auth.EngineConfig":                   auth.EngineConfig{Initial: token},
		"*auth.MemoryStore":                   store,
		"handlers.OAuthConfig":                oauth,
		"handlers.OAuthConfig with DPoP":      dpopOAuth,
		"*auth.DPoPKey":                       dpopKey,
		"*auth.Token with DPoP":               dpopToken,
		"handlers.ClientCredentialsConfig":    handlers.ClientCredentialsConfig{OAuthConfig: oauth},
		"handlers.PasswordConfig":             pwCfg,
		"handlers.RefreshTokenConfig":         rtCfg,
		"handlers.APIKeysConfig":              keysCfg,
		"handlers.ExternallyManagedJWTConfig": jwtCfg,
		"*handlers.ClientCredentials":         cc,
		"*handlers.Password":                  pw,
		"*handlers.RefreshToken":              rt,
		"*handlers.DeviceCode":                dc,
		"*handlers.ExternallyManagedJWT":      ext,
		"*handlers.APIKeys":                   keys,
		"*session.Session":                    sess,
		"*grpcauth.Credentials":               rpc,
		"grpcauth.JWTConfig":                  jwtValCfg,
		"*grpcauth.JWTValidator":              jwtVal,
		"grpcauth.APIKey":                     grpcauth.APIKey{Secret: auth.NewSecret(apiKey)},
		"*grpcauth.APIKeyValidator":           apiVal,
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			for how, out := range renderings(v) {
				for _, s := range secrets {
					for _, leak := range leaks(s) {
						if leak != "" && strings.Contains(out, leak) {
							t.Errorf("%s shows a secret (%.12s...): %.300s", how, leak, out)
						}
					}
				}
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
