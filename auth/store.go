package auth

import (
	"context"
	"encoding/json"
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
	// Username is the user the token belongs to when the handler pins one
	// (its configured Username); empty for a login of whoever logs in. So
	// a pinned and an unpinned login of the same user are two entries; the
	// Logout of the handlers that log a user in ends both.
	Username string `json:"username,omitempty"`
	// Scopes are the requested scopes; their order does not matter.
	Scopes []string `json:"scopes,omitempty"`
	// Audiences are the requested audiences, if any; their order does not
	// matter.
	Audiences []string `json:"audiences,omitempty"`
	// Resources are the requested RFC 8707 resource indicators, if any;
	// their order does not matter.
	Resources []string `json:"resources,omitempty"`
}

// UnmarshalJSON reads a key, including one saved when a key held a single
// "audience", so that such a stored login is still found.
func (k *StoreKey) UnmarshalJSON(b []byte) error {
	type plain StoreKey
	var v struct {
		plain
		Audience string `json:"audience"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*k = StoreKey(v.plain)
	if v.Audience != "" && len(k.Audiences) == 0 {
		k.Audiences = []string{v.Audience}
	}
	return nil
}

// Identity is the part of the key that names one login: issuer, client and
// user. Stores keep one entry per identity; the rest of the key must match
// for the entry to be used.
func (k StoreKey) Identity() string {
	return k.Issuer + "\x00" + k.ClientID + "\x00" + k.Username
}

// Equal reports whether k and o name the same configuration (scopes,
// audiences and resources compared as sets).
func (k StoreKey) Equal(o StoreKey) bool {
	return k.Identity() == o.Identity() && sameSet(k.Scopes, o.Scopes) &&
		sameSet(k.Audiences, o.Audiences) && sameSet(k.Resources, o.Resources)
}

// sameSet reports whether a and b hold the same space-separated words.
func sameSet(a, b []string) bool {
	return slices.Equal(normScopes(a), normScopes(b))
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
