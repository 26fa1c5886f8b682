package auth

import (
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
