package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// opaqueSigner is a key that cannot be exported, as one in a KMS.
type opaqueSigner struct{ k *ecdsa.PrivateKey }

func (s opaqueSigner) Public() crypto.PublicKey { return s.k.Public() }
func (s opaqueSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return s.k.Sign(r, d, o)
}

// TestStoredDPoPKey: the stores' format keeps a token's DPoP key — the
// private key when it can be exported, else its thumbprint — and refuses,
// with ErrMalformedToken, a key that is not one or does not match its
// thumbprint.
func TestStoredDPoPKey(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	exportable, err := NewDPoPKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	opaque, err := NewDPoPKey(opaqueSigner{ec})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewDPoPKey(nil)
	for _, tt := range []struct {
		name string
		key  *DPoPKey
		held bool
	}{{"exportable", exportable, true}, {"in a KMS", opaque, false}} {
		t.Run(tt.name, func(t *testing.T) {
			tok := &Token{AccessToken: NewSecret("at"), TokenType: "DPoP", RefreshToken: NewSecret("rt"), Expiry: time.Unix(2_000_000_000, 0), DPoPKey: tt.key}
			data, err := marshalStored(tok)
			if err != nil {
				t.Fatal(err)
			}
			back, err := unmarshalStored(data)
			if err != nil {
				t.Fatal(err)
			}
			k := back.DPoPKey
			if k == nil || k.Thumbprint() != tt.key.Thumbprint() || k.Held() != tt.held {
				t.Fatalf("key back %v held %v, want %s held %v", k, k != nil && k.Held(), tt.key, tt.held)
			}
			if tt.held {
				if _, err := k.Proof("GET", "https://a.example/", "at", "", time.Now()); err != nil {
					t.Errorf("the stored key makes no proof: %v", err)
				}
			} else if _, err := k.Proof("GET", "https://a.example/", "at", "", time.Now()); !errors.Is(err, ErrLoginRequired) {
				t.Errorf("a key known by its thumbprint: %v", err)
			}
		})
	}
	good, _ := marshalStored(&Token{AccessToken: NewSecret("at"), DPoPKey: exportable})
	for name, data := range map[string]string{
		"not base64":         strings.Replace(string(good), `"dpop_key":"`, `"dpop_key":"!!`, 1),
		"not a key":          strings.Replace(string(good), `"dpop_key":"`, `"dpop_key":"AAAA`, 1),
		"another thumbprint": strings.Replace(string(good), exportable.Thumbprint(), other.Thumbprint(), 1),
	} {
		if _, err := unmarshalStored([]byte(data)); !errors.Is(err, ErrMalformedToken) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestStoreEntryVersionOfDPoPTokens: an entry whose token carries a DPoP
// key is written as version 2, which programs from before DPoP ignore
// (they would send its token as Bearer and drop the key when saving it
// again); this program reads both versions.
func TestStoreEntryVersionOfDPoPTokens(t *testing.T) {
	key, _ := NewDPoPKey(nil)
	sk := StoreKey{Issuer: "https://idp.example", ClientID: "cli"}
	for _, tt := range []struct {
		tok  *Token
		want string
	}{
		{&Token{AccessToken: NewSecret("at")}, `"version":1`},
		{&Token{AccessToken: NewSecret("at"), TokenType: "DPoP", DPoPKey: key}, `"version":2`},
	} {
		data, err := EncodeStoreEntry(sk, tt.tok, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), tt.want) {
			t.Errorf("entry %.40s…, want %s", data, tt.want)
		}
		back, err := DecodeStoreEntry(data, sk)
		if err != nil || (back.DPoPKey == nil) != (tt.tok.DPoPKey == nil) {
			t.Errorf("decoded %v, %v", back, err)
		}
	}
}

// TestDPoPTokenWithoutKeyIsNotSent: a token the provider called DPoP but
// which carries no key (an application's, or an older program's store)
// is sent neither as DPoP nor as Bearer.
func TestDPoPTokenWithoutKeyIsNotSent(t *testing.T) {
	_, err := Wire{}.Bearer(&Token{AccessToken: NewSecret("at"), TokenType: "dpop"})
	if !errors.Is(err, ErrUnsupportedTokenType) {
		t.Errorf("Bearer: %v", err)
	}
}

// TestUnheldDPoPKeyIsNotSpent: a stored login bound to a DPoP key this
// engine does not hold (a KMS key of another program) is neither served
// nor spent: the fetch gets it without its refresh token, so no spend
// record is written that would make the key's holder drop the login.
func TestUnheldDPoPKeyIsNotSpent(t *testing.T) {
	store, err := NewFileStore(FileStoreConfig{Dir: t.TempDir() + "/tokens"})
	if err != nil {
		t.Fatal(err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	kms, _ := NewDPoPKey(opaqueSigner{ec})
	sk := StoreKey{Issuer: "https://idp.example", ClientID: "cli"}
	stored := &Token{AccessToken: NewSecret("at"), TokenType: "DPoP", RefreshToken: NewSecret("rt"), DPoPKey: kms, Expiry: time.Now().Add(time.Hour)}
	if err := store.Save(t.Context(), sk, stored); err != nil {
		t.Fatal(err)
	}
	own, _ := NewDPoPKey(nil)
	var sawRefresh []bool
	e, err := NewEngine(EngineConfig{Store: store, StoreKey: sk, DPoPKey: own, Fetch: func(_ context.Context, cur *Token) (*Token, error) {
		sawRefresh = append(sawRefresh, cur != nil && !cur.RefreshToken.IsZero())
		return &Token{AccessToken: NewSecret("new"), TokenType: "DPoP", DPoPKey: own, Expiry: time.Now().Add(time.Hour)}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	tok, err := e.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken.Reveal() != "new" || len(sawRefresh) != 1 || sawRefresh[0] {
		t.Errorf("served %q; fetches saw a refresh token: %v (want one fetch without)", tok.AccessToken.Reveal(), sawRefresh)
	}
}
