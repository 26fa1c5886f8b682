package auth_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

var (
	key1 = auth.EncryptionKey{ID: "k1", Key: auth.NewSecret("0123456789abcdef0123456789abcdef")}
	key2 = auth.EncryptionKey{ID: "k2", Key: auth.NewSecret("fedcba9876543210fedcba9876543210")}
)

func encrypted(t *testing.T, inner auth.Store, keys ...auth.EncryptionKey) (auth.Store, *authtest.LogBuffer) {
	t.Helper()
	logs := &authtest.LogBuffer{}
	s, err := auth.NewEncryptedStore(auth.EncryptedStoreConfig{Store: inner, Keys: keys, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s, logs
}

// On disk, an encrypted FileStore holds neither token; Load gives them back.
func TestEncryptedFileStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokens")
	fs, err := auth.NewFileStore(auth.FileStoreConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := encrypted(t, fs, key1)
	key := auth.StoreKey{Issuer: "https://idp.example", ClientID: "cli"}
	tok := &auth.Token{AccessToken: auth.NewSecret("at-plain-1"), RefreshToken: auth.NewSecret("rt-plain-1"),
		IDToken: auth.NewSecret("id-plain-1"), Expiry: time.Now().Add(time.Hour).Round(0)}
	ctx := context.Background()
	if err := s.Save(ctx, key, tok); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	data, _ := os.ReadFile(files[0])
	for _, plain := range []string{"at-plain-1", "rt-plain-1", "id-plain-1"} {
		if strings.Contains(string(data), plain) {
			t.Errorf("the file holds %s in clear", plain)
		}
	}
	got, err := s.Load(ctx, key)
	if err != nil || got == nil || got.AccessToken.Reveal() != "at-plain-1" || got.RefreshToken.Reveal() != "rt-plain-1" || got.IDToken.Reveal() != "id-plain-1" {
		t.Fatalf("Load = %v, %v", got, err)
	}
	unlock, err := s.(auth.Locker).Lock(ctx, key) // the FileStore's lock
	if err != nil {
		t.Fatal(err)
	}
	unlock()
}

// Keys rotate: an entry sealed with the old key opens while that key is
// configured; new saves use the first key; an entry that does not open is
// absent and logged without its contents.
func TestEncryptedStoreKeysAndFailures(t *testing.T) {
	mem := &auth.MemoryStore{}
	key := auth.StoreKey{Issuer: "https://idp.example", ClientID: "cli", Username: "ada"}
	ctx := context.Background()
	old, _ := encrypted(t, mem, key1)
	if err := old.Save(ctx, key, &auth.Token{AccessToken: auth.NewSecret("at-old"), Expiry: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	rotated, _ := encrypted(t, mem, key2, key1)
	if got, _ := rotated.Load(ctx, key); got == nil || got.AccessToken.Reveal() != "at-old" {
		t.Fatalf("the old key's entry: %v", got)
	}
	if err := rotated.Save(ctx, key, &auth.Token{AccessToken: auth.NewSecret("at-new"), Expiry: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	raw, _ := mem.Load(ctx, key)
	if !strings.HasPrefix(raw.AccessToken.Reveal(), "authkit-enc:v1:k2:") {
		t.Errorf("new saves are not sealed with the first key")
	}
	tests := []struct {
		name  string
		store auth.Store
		put   *auth.Token
		want  string
	}{
		{"key no longer configured", func() auth.Store { s, _ := encrypted(t, mem, key1); return s }(), nil, `key "k2", which is not configured`},
		{"written without encryption", rotated, &auth.Token{AccessToken: auth.NewSecret("at-injected"), Expiry: time.Now().Add(time.Hour)}, "not encrypted"},
		{"tampered", rotated, func() *auth.Token {
			v := raw.AccessToken.Reveal()
			return &auth.Token{AccessToken: auth.NewSecret(v[:len(v)-4] + "AAAA"), Expiry: raw.Expiry}
		}(), "does not open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.put != nil {
				mem.Save(ctx, key, tt.put)
			}
			logs := &authtest.LogBuffer{}
			s, _ := auth.NewEncryptedStore(auth.EncryptedStoreConfig{Store: mem, Keys: []auth.EncryptionKey{key2, key1}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			if tt.store != rotated {
				s = tt.store
				logs = nil
			}
			got, err := s.Load(ctx, key)
			if got != nil || err != nil {
				t.Fatalf("Load = %v, %v; want nothing", got, err)
			}
			if logs != nil && (!strings.Contains(logs.String(), tt.want) || strings.Contains(logs.String(), "at-")) {
				t.Errorf("log = %q, want %q without contents", logs, tt.want)
			}
		})
	}
	// A ciphertext moved to another login does not open.
	mem.Save(ctx, key, raw)
	otherUser := key
	otherUser.Username = "mallory"
	mem.Save(ctx, otherUser, raw)
	if got, _ := rotated.Load(ctx, otherUser); got != nil {
		t.Error("a ciphertext opened for another login")
	}
}

func TestEncryptedStoreConfig(t *testing.T) {
	for _, keys := range [][]auth.EncryptionKey{nil, {{ID: "k", Key: auth.NewSecret("short")}}, {{ID: "a:b", Key: key1.Key}}, {key1, key1}} {
		if _, err := auth.NewEncryptedStore(auth.EncryptedStoreConfig{Store: &auth.MemoryStore{}, Keys: keys}); !errors.Is(err, auth.ErrInvalidConfig) {
			t.Errorf("keys %v: %v", keys, err)
		}
	}
}
