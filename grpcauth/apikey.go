package grpcauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authkit-go/authkit/auth"
)

// APIKey is what a service knows about one API key.
type APIKey struct {
	// Secret is the key's secret, compared in constant time.
	Secret auth.Secret
	// Subject names the key's owner; "" means the key id.
	Subject string
	// Username is the owner's user name, if any.
	Username string
}

// APIKeyConfig configures an [APIKeyValidator].
type APIKeyConfig struct {
	// Lookup returns the key with the given id, or nil and no error if
	// there is none. An error (the key store is down) fails the call with
	// codes.Unavailable. Required.
	Lookup func(ctx context.Context, keyID string) (*APIKey, error)
	// Wire names the metadata entries of the key id and secret; zero means
	// "x-api-key-id" and "x-api-key".
	Wire auth.Wire
}

// APIKeyValidator is a [Validator] for API keys sent as a key id and a
// secret. It is safe for concurrent use.
type APIKeyValidator struct {
	lookup   func(ctx context.Context, keyID string) (*APIKey, error)
	idName   string
	keyName  string
	mismatch [sha256.Size]byte // compared against when the id is unknown
}

// NewAPIKeyValidator validates cfg and returns a validator.
func NewAPIKeyValidator(cfg APIKeyConfig) (*APIKeyValidator, error) {
	if cfg.Lookup == nil {
		return nil, auth.ConfigError("grpcauth: APIKeyConfig.Lookup is required")
	}
	if err := cfg.Wire.Validate(); err != nil {
		return nil, err
	}
	w := cfg.Wire.WithDefaults()
	return &APIKeyValidator{
		lookup:   cfg.Lookup,
		idName:   w.APIKeyIDName,
		keyName:  w.APIKeyName,
		mismatch: sha256.Sum256([]byte("grpcauth: no such key")),
	}, nil
}

// Validate checks the key id and secret in md and returns the key's
// identity. The secrets are compared in constant time (over their SHA-256
// digests, so that not even their lengths leak), and an unknown id costs
// the same comparison as a wrong secret.
func (v *APIKeyValidator) Validate(ctx context.Context, md metadata.MD) (*Identity, error) {
	ids, secrets := md.Get(v.idName), md.Get(v.keyName)
	if len(ids) == 0 && len(secrets) == 0 {
		return nil, refuse(ErrNoCredentials,
			"grpcauth: missing credentials: send metadata \""+v.idName+"\" and \""+v.keyName+"\"", nil)
	}
	if len(ids) != 1 || len(secrets) != 1 || ids[0] == "" || secrets[0] == "" {
		return nil, refuse(ErrMalformedCredentials,
			"grpcauth: send exactly one \""+v.idName+"\" and one \""+v.keyName+"\" metadata entry", nil)
	}
	key, err := v.lookup(ctx, ids[0])
	if err != nil {
		if st, ok := status.FromError(err); ok {
			return nil, st.Err()
		}
		return nil, status.Error(codes.Unavailable, "grpcauth: the API key cannot be checked now; retry later")
	}
	want := v.mismatch
	if key != nil {
		want = sha256.Sum256([]byte(key.Secret.Reveal()))
	}
	got := sha256.Sum256([]byte(secrets[0]))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || key == nil {
		return nil, refuse(ErrInvalidCredentials, "grpcauth: unknown API key or wrong secret", nil)
	}
	id := &Identity{Subject: key.Subject, Username: key.Username, KeyID: ids[0]}
	if id.Subject == "" {
		id.Subject = ids[0]
	}
	return id, nil
}
