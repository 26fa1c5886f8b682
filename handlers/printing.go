package handlers

import (
	"fmt"
	"log/slog"
	"strconv"

	"github.com/authkit-go/authkit/auth"
)

// Printing a handler: every handler formats itself as one line — its kind,
// the user it names and its engine's state — under every fmt verb and as
// a slog value, so that neither fmt nor slog walks by reflection into
// state its goroutines change (a data race), and no secret is shown
// (TestHandlersPrintSafely).

// describe is the line a handler prints.
func describe(kind, user string, e *auth.Engine) string {
	s := "handlers." + kind + "{"
	if user != "" {
		s += "user: " + strconv.Quote(user) + ", "
	}
	if e == nil {
		return s + "static}"
	}
	return s + e.String() + "}"
}

// formatLine prints line under verb: quoted for %q, as it is otherwise.
func formatLine(f fmt.State, verb rune, line string) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", line)
		return
	}
	_, _ = f.Write([]byte(line))
}

// String describes the handler; see the printing rules above.
func (h *ClientCredentials) String() string { return describe("ClientCredentials", "", h.engine) }

// Format prints String under every verb.
func (h *ClientCredentials) Format(f fmt.State, verb rune) { formatLine(f, verb, h.String()) }

// LogValue logs String.
func (h *ClientCredentials) LogValue() slog.Value { return slog.StringValue(h.String()) }

// String describes the handler; see the printing rules above.
func (h *Password) String() string { return describe("Password", h.user, h.engine) }

// Format prints String under every verb.
func (h *Password) Format(f fmt.State, verb rune) { formatLine(f, verb, h.String()) }

// LogValue logs String.
func (h *Password) LogValue() slog.Value { return slog.StringValue(h.String()) }

// String describes the handler; see the printing rules above.
func (h *RefreshToken) String() string { return describe("RefreshToken", h.Username(), h.engine) }

// Format prints String under every verb.
func (h *RefreshToken) Format(f fmt.State, verb rune) { formatLine(f, verb, h.String()) }

// LogValue logs String.
func (h *RefreshToken) LogValue() slog.Value { return slog.StringValue(h.String()) }

// String describes the handler; see the printing rules above.
func (h *DeviceCode) String() string { return describe("DeviceCode", h.Username(), h.engine) }

// Format prints String under every verb.
func (h *DeviceCode) Format(f fmt.State, verb rune) { formatLine(f, verb, h.String()) }

// LogValue logs String.
func (h *DeviceCode) LogValue() slog.Value { return slog.StringValue(h.String()) }

// String describes the handler; see the printing rules above.
func (h *BrowserLogin) String() string { return describe("BrowserLogin", h.Username(), h.engine) }

// Format prints String under every verb.
func (h *BrowserLogin) Format(f fmt.State, verb rune) { formatLine(f, verb, h.String()) }

// LogValue logs String.
func (h *BrowserLogin) LogValue() slog.Value { return slog.StringValue(h.String()) }

// String describes the handler; see the printing rules above.
func (h *ExternallyManagedJWT) String() string {
	return describe("ExternallyManagedJWT", h.username, h.engine)
}

// Format prints String under every verb.
func (h *ExternallyManagedJWT) Format(f fmt.State, verb rune) { formatLine(f, verb, h.String()) }

// LogValue logs String.
func (h *ExternallyManagedJWT) LogValue() slog.Value { return slog.StringValue(h.String()) }

// String describes the handler; see the printing rules above.
func (h *APIKeys) String() string { return describe("APIKeys", h.user, nil) }

// Format prints String under every verb.
func (h *APIKeys) Format(f fmt.State, verb rune) { formatLine(f, verb, h.String()) }

// LogValue logs String.
func (h *APIKeys) LogValue() slog.Value { return slog.StringValue(h.String()) }

// String describes the handler; see the printing rules above.
func (h *TokenExchange) String() string { return describe("TokenExchange", "", h.engine) }

// Format prints String under every verb.
func (h *TokenExchange) Format(f fmt.State, verb rune) { formatLine(f, verb, h.String()) }

// LogValue logs String.
func (h *TokenExchange) LogValue() slog.Value { return slog.StringValue(h.String()) }

// String describes the handler; see the printing rules above.
func (h *JWTBearer) String() string { return describe("JWTBearer", "", h.engine) }

// Format prints String under every verb.
func (h *JWTBearer) Format(f fmt.State, verb rune) { formatLine(f, verb, h.String()) }

// LogValue logs String.
func (h *JWTBearer) LogValue() slog.Value { return slog.StringValue(h.String()) }
