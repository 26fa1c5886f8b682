package authtest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/authkit-go/authkit/authtest"
)

// A test starts a provider, gets a token from it with any OAuth client, and
// checks the token and the requests the client made.
func ExampleProvider() {
	clock := authtest.NewClock(time.Time{})
	p := authtest.NewProvider(authtest.ProviderConfig{
		Clock:   clock,
		Clients: []authtest.Client{{ID: "svc", Secret: "s3cret", AuthMethods: []string{authtest.AuthMethodBasic}}},
	})
	defer p.Close()

	cc := clientcredentials.Config{ClientID: "svc", ClientSecret: "s3cret", TokenURL: p.TokenURL(), Scopes: []string{"read"}}
	tok, err := cc.Token(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(tok.AccessToken, claims, p.Keyfunc, jwt.WithTimeFunc(clock.Now)); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tok.TokenType, claims["sub"], claims["scope"])
	fmt.Println(p.GrantRequests(authtest.GrantClientCredentials), p.LastRequest(authtest.EndpointToken).AuthMethod)
	// Output:
	// Bearer service-account-svc read
	// 1 client_secret_basic
}

// The device flow, with golang.org/x/oauth2 as the client: the hook approves
// each code as soon as it is issued.
func ExampleProvider_OnDeviceAuthorization() {
	p := authtest.NewProvider(authtest.ProviderConfig{
		Clients:        []authtest.Client{{ID: "cli"}},
		Users:          []authtest.User{{Username: "ada", Password: "pw"}},
		DeviceInterval: time.Second, // the real clock: the client waits this long
	})
	defer p.Close()
	p.OnDeviceAuthorization(func(userCode string) {
		if err := p.ApproveDevice(userCode, "ada"); err != nil {
			fmt.Println(err)
		}
	})

	cfg := oauth2.Config{ClientID: "cli", Scopes: []string{"openid", "offline_access"}, Endpoint: oauth2.Endpoint{
		DeviceAuthURL: p.DeviceAuthorizationURL(), TokenURL: p.TokenURL(), AuthStyle: oauth2.AuthStyleInParams}}
	ctx := context.Background()
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tok.RefreshToken != "", tok.Extra("id_token") != nil)
	fmt.Println(p.Requests(authtest.EndpointDeviceCode), p.GrantRequests(authtest.GrantDeviceCode))
	// Output:
	// true true
	// 1 1
}
