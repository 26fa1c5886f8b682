package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/authkit-go/authkit/handlers"
	"github.com/authkit-go/authkit/internal/netpolicy"
)

// devicePrompter shows a device code on stderr: the URL and the code, a QR
// code of the URL that carries the code, and a countdown to the code's
// expiry that stops when the login ends.
type devicePrompter struct {
	w         io.Writer
	qr        bool // draw the QR code
	countdown bool // animate the countdown (a terminal)
	color     bool // draw the QR code black on white with escape codes
	now       func() time.Time
	tick      time.Duration

	wg sync.WaitGroup // the countdown
}

func (a *app) newPrompter() *devicePrompter {
	return &devicePrompter{w: a.stderr, qr: a.showQR, countdown: a.animate, color: a.color, now: time.Now, tick: time.Second}
}

// show prints the prompt and starts the countdown; it returns at once.
func (d *devicePrompter) show(ctx context.Context, p handlers.DevicePrompt) error {
	// The provider's values go to a terminal: nothing in them may drive it.
	uri, code := netpolicy.TerminalSafe(p.VerificationURI), netpolicy.TerminalSafe(p.UserCode)
	var b strings.Builder
	fmt.Fprintf(&b, "To log in, open this page in a browser:\n\n    %s\n\nand enter the code:  %s\n\n", uri, code)
	if p.VerificationURIComplete != "" {
		if d.qr {
			b.WriteString("Or scan this QR code with your phone; it carries the code:\n\n")
			if err := renderQR(&b, p.VerificationURIComplete, d.color); err != nil {
				fmt.Fprintf(&b, "(no QR code: %v)\n", err)
			}
			b.WriteString("\n")
		} else {
			fmt.Fprintf(&b, "Or open %s, which carries the code.\n\n", netpolicy.TerminalSafe(p.VerificationURIComplete))
		}
	}
	expiry := p.Expiry
	if expiry.IsZero() {
		expiry = d.now().Add(p.ExpiresIn)
	}
	if !d.countdown {
		fmt.Fprintf(&b, "Waiting for the login; the code expires at %s (in %s).\n",
			expiry.Local().Format("15:04:05"), clock(expiry.Sub(d.now())))
		_, err := io.WriteString(d.w, b.String())
		return err
	}
	if _, err := io.WriteString(d.w, b.String()); err != nil {
		return err
	}
	d.wg.Add(1)
	go d.count(ctx, expiry, p.Done)
	return nil
}

// count redraws "expires in m:ss" every tick until the login ends, then
// erases the line.
func (d *devicePrompter) count(ctx context.Context, expiry time.Time, done <-chan struct{}) {
	defer d.wg.Done()
	t := time.NewTicker(d.tick)
	defer t.Stop()
	for {
		fmt.Fprintf(d.w, "\r\x1b[2KWaiting for the login... the code expires in %s", clock(expiry.Sub(d.now())))
		select {
		case <-done:
		case <-ctx.Done():
		case <-t.C:
			continue
		}
		fmt.Fprint(d.w, "\r\x1b[2K")
		return
	}
}

// wait returns when the countdown, if any, has stopped.
func (d *devicePrompter) wait() { d.wg.Wait() }

// clock formats d as m:ss (h:mm:ss from an hour); a negative d is 0:00.
func clock(d time.Duration) string {
	s := max(int(d.Round(time.Second)/time.Second), 0)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// renderQR draws content as a QR code with half-block characters, two
// modules per character cell, quiet zone included. With color the code is
// drawn black on white whatever the terminal's colours; without, light
// modules are drawn as blocks, which reads right on the usual light-on-dark
// terminal.
func renderQR(w io.Writer, content string, color bool) error {
	q, err := qrcode.New(content, qrcode.Low)
	if err != nil {
		return err
	}
	bm := q.Bitmap() // true is a dark module; it includes the quiet zone
	light := func(y, x int) bool { return y >= len(bm) || !bm[y][x] }
	var b strings.Builder
	for y := 0; y < len(bm); y += 2 {
		if color {
			b.WriteString("\x1b[30;47m")
		}
		for x := range bm[y] {
			top, bottom := !light(y, x), !light(y+1, x) // dark?
			if !color {
				top, bottom = !top, !bottom
			}
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteString(" ")
			}
		}
		if color {
			b.WriteString("\x1b[0m")
		}
		b.WriteString("\n")
	}
	_, err = io.WriteString(w, b.String())
	return err
}
