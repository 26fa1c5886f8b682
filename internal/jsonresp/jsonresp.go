// Package jsonresp writes the JSON answers of authkit's test servers (the
// provider and the platform in authtest): one copy of the headers an OAuth
// server sends with them.
package jsonresp

import (
	"encoding/json"
	"net/http"
)

// Write answers v as JSON with status, marked not to be cached
// (https://www.rfc-editor.org/rfc/rfc6749#section-5.1).
func Write(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
