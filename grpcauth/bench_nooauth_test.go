//go:build !grpcoauth

package grpcauth_test

import (
	"time"

	"google.golang.org/grpc/credentials"
)

// oauthTokenSource is nil without the grpcoauth build tag; see
// bench_oauth_test.go.
func oauthTokenSource(time.Time) (string, credentials.PerRPCCredentials) { return "", nil }
