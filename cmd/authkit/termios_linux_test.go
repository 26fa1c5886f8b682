package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// echoOff reports whether the terminal behind the pty master f has echo
// off: the command is reading a password.
func echoOff(f *os.File) bool {
	t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil && t.Lflag&unix.ECHO == 0
}
