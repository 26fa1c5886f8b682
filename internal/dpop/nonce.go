package dpop

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// Nonces keeps the latest DPoP nonce each server handed out
// (https://www.rfc-editor.org/rfc/rfc9449#section-8), by origin: a server
// may renew it in any answer, and every later proof to it carries it. The
// zero value is ready; it is safe for concurrent use.
type Nonces struct {
	mu sync.Mutex        // guards m
	m  map[string]string // origin → nonce
}

// maxNonce bounds a nonce kept: a server that hands out megabytes does not
// make every proof that large.
const maxNonce = 512

// Get returns the nonce for the origin of uri, or "".
func (n *Nonces) Get(uri string) string {
	o := origin(uri)
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m[o]
}

// Keep records the DPoP-Nonce of an answer from the origin of uri and
// reports whether it is new.
func (n *Nonces) Keep(uri string, h http.Header) bool {
	v := h.Get("DPoP-Nonce")
	if v == "" || len(v) > maxNonce || strings.ContainsAny(v, "\"\\\r\n") {
		return false
	}
	o := origin(uri)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m[o] == v {
		return false
	}
	if n.m == nil {
		n.m = map[string]string{}
	}
	if len(n.m) >= 64 { // a bounded memory of the servers a client talks to
		clear(n.m)
	}
	n.m[o] = v
	return true
}

// origin is scheme://host of uri, lowercased.
func origin(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}
