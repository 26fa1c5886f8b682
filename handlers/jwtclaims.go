package handlers

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authkit-go/authkit/auth"
)

// unverifiedClaims decodes the claims of a compact JWT WITHOUT verifying its
// signature, its issuer, its audience or its times. Use it only on a JWT that
// comes from a party the program already trusts (the application's own login,
// the token endpoint over TLS), to learn what the token says about itself —
// never to decide whether to trust it: the service that receives the token
// verifies it.
//
// The signing algorithm does not matter here: a JWT signed with an algorithm
// that golang-jwt does not know is decoded all the same. Errors wrap
// auth.ErrMalformedToken and never quote the token.
func unverifiedClaims(raw string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, _, err := jwt.NewParser().ParseUnverified(raw, claims)
	if err != nil && !errors.Is(err, jwt.ErrTokenUnverifiable) {
		return nil, fmt.Errorf("%w: not a JWT: %w", auth.ErrMalformedToken, err)
	}
	return claims, nil
}

// claimExpiry returns the "exp" claim
// (https://www.rfc-editor.org/rfc/rfc7519#section-4.1.4), or the zero time
// when the JWT has none. An "exp" that is not a number is an error wrapping
// auth.ErrMalformedToken.
func claimExpiry(claims jwt.MapClaims) (time.Time, error) {
	exp, err := claims.GetExpirationTime()
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: the JWT's exp claim is not a number", auth.ErrMalformedToken)
	}
	if exp == nil {
		return time.Time{}, nil
	}
	return exp.Time, nil
}

// claimString returns the string claim name, or "" when it is absent or not
// a string.
func claimString(claims jwt.MapClaims, name string) string {
	s, _ := claims[name].(string)
	return s
}
