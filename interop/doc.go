// Package interop holds authkit's interop tests: the handlers, the session
// and grpcauth driven against real identity providers, Dex v2.45.1 and panva
// oidc-provider 9.13.3, rather than against authkit's own authtest provider.
//
// The package has no library code. Its tests need the providers running and
// skip without them; run them with
//
//	bash interop/run.sh
//
// which builds Dex from the Go module proxy (through the tool module in
// interop/dex), installs oidc-provider from npm (interop/oidc), starts both on
// 127.0.0.1, sets AUTHKIT_DEX_ISSUER and AUTHKIT_OIDC_ISSUER and runs
// go test -race ./interop/... . Extra arguments go to go test, e.g.
//
//	bash interop/run.sh -run Dex -v
package interop
