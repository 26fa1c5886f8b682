package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/MicahParks/jwkset"

	"github.com/authkit-go/authkit/auth"
)

// maxBody is the largest JWK Set read; a larger one is an error.
const maxBody = 1 << 20

// jwk is a verification key of a fetched set.
type jwk struct {
	key any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	alg string // the JWK's "alg" (RFC 7517 §4.4), empty if it has none
}

// keys is a fetched JWK Set, immutable once installed.
type keys struct {
	all     []jwk
	byKid   map[string][]jwk // a kid may name keys of several types (RFC 7517 §4.5)
	fetched time.Time        // when the fetch started
}

// find returns the keys for kid, or all keys when kid is empty; k may be nil.
func (k *keys) find(kid string) ([]jwk, bool) {
	if k == nil {
		return nil, false
	}
	if kid == "" {
		return k.all, len(k.all) > 0
	}
	found, ok := k.byKid[kid]
	return found, ok
}

// fetch gets and parses the set. Its errors carry the status and a reason,
// never the body.
func (s *KeySet) fetch(ctx context.Context) (*keys, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	req.Header.Set("User-Agent", s.ua)
	resp, err := s.client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			ue.URL = s.safeURL // the query may carry a secret
		}
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	bad := func(reason string) error { return &auth.ResponseError{StatusCode: resp.StatusCode, Reason: reason} }
	switch {
	case len(body) > maxBody:
		return nil, bad("JWK Set exceeds 1 MiB")
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return nil, bad(fmt.Sprintf("HTTP status %d", resp.StatusCode))
	}
	set, reason := parseSet(body)
	if set == nil {
		return nil, bad(reason)
	}
	return set, nil
}

// parseSet decodes a JWK Set, keeping the public signature keys it can use
// and skipping the others, as RFC 7517 §5 asks. The JWK parsing is
// jwkset's, which checks that EC points are on their curve and that x5c
// certificates match; without GetX5U it makes no request. On failure it
// returns a reason fit for an error message.
func parseSet(body []byte) (*keys, string) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Keys == nil {
		return nil, "body is not a JWK Set"
	}
	set := &keys{byKid: make(map[string][]jwk)}
	for _, raw := range doc.Keys {
		var m jwkset.JWKMarshal
		if json.Unmarshal(raw, &m) != nil || m.USE == jwkset.UseEnc ||
			len(m.KEYOPS) > 0 && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify) {
			continue
		}
		// Private is false: symmetric keys are refused and private parts ignored.
		j, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			continue
		}
		switch j.Key().(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			continue
		}
		k := jwk{key: j.Key(), alg: string(m.ALG)}
		set.all = append(set.all, k)
		if m.KID != "" {
			set.byKid[m.KID] = append(set.byKid[m.KID], k)
		}
	}
	if len(set.all) == 0 {
		return nil, "JWK Set has no usable signature key"
	}
	return set, ""
}

// noDowngrade wraps a redirect policy (nil: follow) so that it refuses a
// redirect away from https and stops after 10 redirects.
func noDowngrade(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errTooManyRedirects
		}
		for _, r := range via {
			if r.URL.Scheme == "https" && req.URL.Scheme != "https" {
				return errInsecureRedirect
			}
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
}
