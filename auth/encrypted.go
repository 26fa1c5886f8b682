package auth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// EncryptionKey is one key of an [EncryptedStore]: an AES-256 key (32
// bytes) and the id stored beside each ciphertext, so that keys can rotate.
type EncryptionKey struct {
	// ID names the key; it is stored in clear. Required, without ':'.
	ID string
	// Key is 32 random bytes.
	Key Secret
}

// EncryptedStoreConfig configures [NewEncryptedStore].
type EncryptedStoreConfig struct {
	// Store keeps the encrypted tokens: a FileStore, a redisstore.Store...
	// Required.
	Store Store
	// Keys decrypt; the first also encrypts. To rotate, put the new key
	// first and keep the old ones until every entry was saved again.
	// Required.
	Keys []EncryptionKey
	// Logger receives a record for each entry that cannot be decrypted,
	// never its contents; nil means silent.
	Logger *slog.Logger
}

// EncryptedStore encrypts tokens at rest with AES-256-GCM before they
// reach another store. The whole token
// is sealed, bound to its login's identity (issuer, client, user) as
// additional data, so a ciphertext moved to another login does not open;
// only the expiries stay in clear, for a store's time to live. An entry
// that does not decrypt — unknown key, tampered, written without
// encryption — is treated as absent, and logged without its contents.
type EncryptedStore struct {
	inner Store
	aeads map[string]cipher.AEAD
	first string
	log   *slog.Logger
}

// lockingEncryptedStore is an EncryptedStore over a Locker, and a Locker
// itself: the inner store's lock of the same key.
type lockingEncryptedStore struct {
	*EncryptedStore
	Locker
}

var (
	_ Store  = (*EncryptedStore)(nil)
	_ Locker = lockingEncryptedStore{}
)

// encPrefix marks a sealed token; the key id and the ciphertext follow.
const encPrefix = "authkit-enc:v1:"

// NewEncryptedStore checks cfg and returns the store: an [*EncryptedStore],
// which is also a [Locker] when cfg.Store is one (taking cfg.Store's lock)
// and only then, so that the engine serialises the saves of a store that
// has no lock of its own (TestEncryptedStoreIsALockerOnlyOverALocker).
func NewEncryptedStore(cfg EncryptedStoreConfig) (Store, error) {
	if cfg.Store == nil || len(cfg.Keys) == 0 {
		return nil, configError("EncryptedStoreConfig needs a Store and at least one key")
	}
	s := &EncryptedStore{inner: cfg.Store, aeads: map[string]cipher.AEAD{}, first: cfg.Keys[0].ID, log: cfg.Logger}
	if s.log == nil {
		s.log = discardLogger
	}
	for _, k := range cfg.Keys {
		if k.ID == "" || strings.Contains(k.ID, ":") {
			return nil, configError("encryption key id %q must be non-empty and without ':'", k.ID)
		}
		if _, dup := s.aeads[k.ID]; dup {
			return nil, configError("encryption key id %q is given twice", k.ID)
		}
		raw := []byte(k.Key.Reveal())
		if len(raw) != 32 {
			return nil, configError("encryption key %q has %d bytes; AES-256 needs 32", k.ID, len(raw))
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, configError("encryption key %q: %v", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, configError("encryption key %q: %v", k.ID, err)
		}
		s.aeads[k.ID] = aead
	}
	if l, ok := cfg.Store.(Locker); ok {
		return lockingEncryptedStore{s, l}, nil
	}
	return s, nil
}

// Save seals tok and saves it in the inner store.
func (s *EncryptedStore) Save(ctx context.Context, key StoreKey, tok *Token) error {
	if tok == nil {
		return fmt.Errorf("%w: nil token", ErrMalformedToken)
	}
	plain, err := marshalStored(tok)
	if err != nil {
		return fmt.Errorf("%w: token cannot be encoded as JSON (check Extra)", ErrMalformedToken)
	}
	aead := s.aeads[s.first]
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce) // never fails
	sealed := aead.Seal(nonce, nonce, plain, []byte(key.Identity()))
	out := &Token{
		AccessToken: NewSecret(encPrefix + s.first + ":" + base64.RawURLEncoding.EncodeToString(sealed)),
		Expiry:      tok.Expiry, RefreshExpiry: tok.RefreshExpiry,
	}
	if !tok.RefreshToken.IsZero() {
		out.RefreshToken = NewSecret("sealed") // so that a store's time to live follows the refresh token
	}
	if g := tok.gen(); g > 0 {
		out.setMeta(func(m *tokenMeta) { m.gen = g }) // so that a store can compare generations
	}
	return s.inner.Save(ctx, key, out)
}

// Load opens the token saved for key, or returns (nil, nil) when there is
// none or it does not open.
func (s *EncryptedStore) Load(ctx context.Context, key StoreKey) (*Token, error) {
	tok, err := s.inner.Load(ctx, key)
	if err != nil || tok == nil {
		return nil, err
	}
	opened, err := s.open(tok.AccessToken.Reveal(), key)
	if err != nil {
		s.log.Warn("auth: encrypted token ignored; the next login replaces it", "reason", err.Error())
		return nil, nil
	}
	return opened, nil
}

func (s *EncryptedStore) open(v string, key StoreKey) (*Token, error) {
	rest, ok := strings.CutPrefix(v, encPrefix)
	if !ok {
		return nil, errors.New("not encrypted (written without EncryptedStore)")
	}
	kid, b64, ok := strings.Cut(rest, ":")
	aead := s.aeads[kid]
	if !ok || aead == nil {
		return nil, fmt.Errorf("sealed with key %q, which is not configured", kid)
	}
	sealed, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil || len(sealed) < aead.NonceSize() {
		return nil, errors.New("corrupt ciphertext")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(key.Identity()))
	if err != nil {
		return nil, fmt.Errorf("does not open with key %q (tampered, or sealed for another login)", kid)
	}
	tok, err := unmarshalStored(plain)
	if err != nil || tok == nil {
		return nil, errors.New("corrupt token inside the ciphertext")
	}
	return tok, nil
}

// Delete deletes key's entry in the inner store.
func (s *EncryptedStore) Delete(ctx context.Context, key StoreKey) error {
	return s.inner.Delete(ctx, key)
}
