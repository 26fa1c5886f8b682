package authtest

import (
	"strings"
	"sync"
)

// LogBuffer collects text written concurrently, such as the records of a
// slog.Logger shared by a handler's goroutines, for a test to read. The
// zero value is ready to use.
type LogBuffer struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
