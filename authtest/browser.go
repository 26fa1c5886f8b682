package authtest

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// Browser plays a person at a web browser against a [Provider]'s login
// page, with an http.Client and a cookie jar: [Browser.Open] loads an
// authorization URL, submits the login form (or denies) and follows the
// redirect back to the application, whose page it keeps. Its Open is a
// browser opener for a browser-login handler. It is safe for concurrent use.
type Browser struct {
	// Username and Password are typed into the login form.
	Username, Password string
	// Deny presses "Deny" instead of logging in.
	Deny bool

	client *http.Client
	mu     sync.Mutex // guards last
	last   Page
}

// Page is a page the browser ended on.
type Page struct {
	// URL is the page's address.
	URL string
	// Status is the HTTP status it came with.
	Status int
	// Body is its text.
	Body string
}

// Hidden parts of a page, and its tags, for [Page.Text].
var (
	pageHidden = regexp.MustCompile(`(?is)<(head|style|script)\b.*?</(head|style|script)>`)
	pageTag    = regexp.MustCompile(`<[^>]*>`)
)

// Text returns the page's visible text: without the head, scripts, styles
// and tags, entities decoded, whitespace collapsed to single spaces.
func (p Page) Text() string {
	s := pageHidden.ReplaceAllString(p.Body, " ")
	s = pageTag.ReplaceAllString(s, " ")
	return strings.Join(strings.Fields(html.UnescapeString(s)), " ")
}

// NewBrowser returns a browser that logs in as username with password. It
// trusts the provider's TLS certificate.
func (p *Provider) NewBrowser(username, password string) *Browser {
	jar, _ := cookiejar.New(nil) // never fails without options
	c := *p.Client()
	c.Jar = jar
	return &Browser{Username: username, Password: password, client: &c}
}

// requestField finds the login form's request id.
var requestField = regexp.MustCompile(`name="request" value="([^"]+)"`)

// Open loads authURL, answers the login form and follows the redirects to
// the application; it returns when the application's page has arrived, or
// with an error when the provider refused the request or the login (its
// page's text is in the error). The page is kept for [Browser.LastPage].
func (b *Browser) Open(ctx context.Context, authURL string) error {
	page, err := b.get(ctx, authURL)
	if err != nil {
		return err
	}
	m := requestField.FindStringSubmatch(page.Body)
	if page.Status != http.StatusOK || m == nil {
		b.keep(page)
		return fmt.Errorf("authtest: browser: no login form at the authorization URL (%d): %s", page.Status, strings.TrimSpace(page.Body))
	}
	form := url.Values{"request": {m[1]}, "username": {b.Username}, "password": {b.Password}, "action": {"login"}}
	if b.Deny {
		form.Set("action", "deny")
	}
	u, err := url.Parse(authURL)
	if err != nil {
		return err
	}
	u.RawQuery = ""
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	page, err = b.do(req)
	if err != nil {
		return err
	}
	b.keep(page)
	if requestField.MatchString(page.Body) {
		return errors.New("authtest: browser: the provider refused the login: " + descInvalidCredentials)
	}
	return nil
}

// LastPage returns the last page the browser ended on.
func (b *Browser) LastPage() Page {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

func (b *Browser) keep(p Page) {
	b.mu.Lock()
	b.last = p
	b.mu.Unlock()
}

func (b *Browser) get(ctx context.Context, u string) (Page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Page{}, err
	}
	return b.do(req)
}

func (b *Browser) do(req *http.Request) (Page, error) {
	resp, err := b.client.Do(req)
	if err != nil {
		// Without the URL's query, which holds a code on the way back to
		// the application.
		var ue *url.Error
		if errors.As(err, &ue) {
			if u, perr := url.Parse(ue.URL); perr == nil {
				u.RawQuery, u.Fragment = "", ""
				return Page{}, fmt.Errorf("authtest: browser: loading %s: %w", u, ue.Err)
			}
		}
		return Page{}, fmt.Errorf("authtest: browser: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Page{}, fmt.Errorf("authtest: browser: %w", err)
	}
	return Page{URL: resp.Request.URL.String(), Status: resp.StatusCode, Body: string(body)}, nil
}
