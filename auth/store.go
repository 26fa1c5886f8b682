package auth

import (
	"context"
	"slices"
	"strings"
	"sync"
)

// StoreKey says what a stored token was issued for. A store returns a token
// only for the key it was saved under: a token issued for other scopes or
// another audience is ignored, so a configuration change never reuses a
// token that does not fit it.
type StoreKey struct {
	// Issuer is the provider's issuer, or its token URL when there is none.
	Issuer string `json:"issuer"`
	// ClientID is the OAuth client the token was issued to.
	ClientID string `json:"client_id,omitempty"`
	// Username is the user the token belongs to, if known when saving.
	Username string `json:"username,omitempty"`
	// Scopes are the requested scopes; their order does not matter.
	Scopes []string `json:"scopes,omitempty"`
	// Audience is the requested audience, if any.
	Audience string `json:"audience,omitempty"`
}

// Identity is the part of the key that names one login: issuer, client and
// user. Stores keep one entry per identity; the rest of the key must match
// for the entry to be used.
func (k StoreKey) Identity() string {
	return k.Issuer + "\x00" + k.ClientID + "\x00" + k.Username
}

// Equal reports whether k and o name the same configuration (scopes compared
// as a set).
func (k StoreKey) Equal(o StoreKey) bool {
	if k.Identity() != o.Identity() || k.Audience != o.Audience {
		return false
	}
	a, b := normScopes(k.Scopes), normScopes(o.Scopes)
	return slices.Equal(a, b)
}

func normScopes(s []string) []string {
	var out []string
	for _, v := range s {
		out = append(out, strings.Fields(v)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Store keeps tokens between runs. Load returns (nil, nil) when nothing
// usable is stored for key — absent, or saved for another configuration, or
// unreadable (a store reports that through its logger, never as a panic).
// Delete is the logout.
type Store interface {
	Load(ctx context.Context, key StoreKey) (*Token, error)
	Save(ctx context.Context, key StoreKey, tok *Token) error
	Delete(ctx context.Context, key StoreKey) error
}

// Locker is implemented by stores shared between processes. The engine holds
// the lock around "reload, fetch, save", so that two processes never spend
// the same rotating refresh token: the second one finds the first one's new
// token in the store and uses it.
type Locker interface {
	// Lock blocks until the lock for key is held or ctx is done; the
	// returned function releases it.
	Lock(ctx context.Context, key StoreKey) (func(), error)
}

// MemoryStore is a Store in memory: the default, kept for the life of the
// process. The zero value is ready to use.
type MemoryStore struct {
	mu      sync.Mutex // guards entries
	entries map[string]memoryEntry
}

type memoryEntry struct {
	key StoreKey
	tok *Token
}

// Load returns a copy of the token saved under key, or nil.
func (s *MemoryStore) Load(_ context.Context, key StoreKey) (*Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key.Identity()]
	if !ok || !e.key.Equal(key) {
		return nil, nil
	}
	return e.tok.Clone(), nil
}

// Save keeps a copy of tok under key.
func (s *MemoryStore) Save(_ context.Context, key StoreKey, tok *Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries == nil {
		s.entries = make(map[string]memoryEntry)
	}
	s.entries[key.Identity()] = memoryEntry{key: key, tok: tok.Clone()}
	return nil
}

// Delete forgets the token of key's identity.
func (s *MemoryStore) Delete(_ context.Context, key StoreKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.entries, key.Identity())
	return nil
}
