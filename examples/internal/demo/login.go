package demo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest/platform"
	"github.com/authkit-go/authkit/session"
)

// LoggedIn is a handler after a person's login: who it names and its token.
type LoggedIn interface {
	auth.AuthenticationHandler
	auth.TokenReader
}

// ReportLogin prints who h logged in and its token, masked. With hub set
// it calls the hub's GET /api/me through a session on h, and, with plat,
// prints the hub's counters.
func ReportLogin(ctx context.Context, out *Out, h LoggedIn, hub string, plat *platform.Platform) error {
	tok, err := h.Token(ctx)
	if err != nil {
		return err
	}
	user, refresh := h.Username(), "none"
	if user == "" {
		user = "(unknown user)"
	}
	if !tok.RefreshToken.IsZero() {
		refresh = "received (redacted)"
	}
	out.Printf("Logged in as %s. Access token %s, valid until %s; refresh token %s.\n",
		user, Value("Bearer "+tok.AccessToken.Reveal()), tok.Expiry.Format(time.TimeOnly), refresh)
	if hub == "" {
		return nil
	}
	s, err := session.New(h, session.Config{HubURL: hub})
	if err != nil {
		return err
	}
	defer s.Close()
	var me platform.Me
	if err := GetJSON(ctx, s.HTTPClient(), strings.TrimRight(hub, "/")+platform.PathMe, &me); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	out.Printf("hub: GET /api/me -> %s (by %s)\n", me.Subject, me.Method)
	if plat != nil {
		c := plat.Counts()[platform.ServiceHub]
		out.Printf("hub counters: %d authenticated, %d refused\n", c.Authenticated, c.Rejected)
	}
	return nil
}
