package oauthclient

import (
	"context"
	"fmt"
	"net/url"
)

// Revoke asks the revocation endpoint to revoke token
// (https://www.rfc-editor.org/rfc/rfc7009#section-2.1), with hint as
// token_type_hint ("refresh_token" or "access_token"; empty for none) and
// the client's authentication. A 200 answer is success, also for a token
// the server did not know (§2.2); an error answer is an *auth.OAuthError
// (unsupported_token_type included) or an *auth.ResponseError, with the
// token scrubbed out.
func (c *Client) Revoke(ctx context.Context, endpoint, token, hint string) error {
	form := url.Values{"token": {token}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	resp, err := c.Post(ctx, endpoint, form)
	if err != nil {
		return err
	}
	if resp.StatusCode == 200 {
		return nil
	}
	scrub := c.scrubber(form)
	if oe := parseError(resp.StatusCode, resp.Body, scrub); oe != nil {
		return oe
	}
	return responseError(resp.StatusCode, resp.Header, resp.Body, fmt.Sprintf("HTTP status %d without an OAuth error", resp.StatusCode), scrub)
}
