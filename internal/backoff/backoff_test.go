package backoff

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		lo, hi time.Duration
		want   time.Duration // the span; the result lies in [want/2, want]
	}{
		{"first", 1, time.Second, time.Minute, time.Second},
		{"doubles", 3, time.Second, time.Minute, 4 * time.Second},
		{"capped", 20, time.Second, time.Minute, time.Minute},
		{"huge n does not overflow", 1 << 20, time.Second, time.Minute, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 100 {
				d := Delay(tt.n, tt.lo, tt.hi)
				if d < tt.want/2 || d > tt.want {
					t.Fatalf("Delay = %v, want in [%v, %v]", d, tt.want/2, tt.want)
				}
			}
		})
	}
	if d := Delay(1, 0, time.Second); d != 0 {
		t.Errorf("Delay with lo 0 = %v, want 0", d)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	date := now.Add(-time.Hour).Format(http.TimeFormat) // the server's clock is an hour behind
	tests := []struct {
		name, v, date string
		want          time.Duration
		ok            bool
	}{
		{"absent", "", "", 0, false},
		{"seconds", "7", "", 7 * time.Second, true},
		{"capped", "999999999999", "", time.Minute, true},
		{"negative", "-3", "", 0, false},
		{"garbage", "soon", "", 0, false},
		{"date against local now", now.Add(10 * time.Second).Format(http.TimeFormat), "", 10 * time.Second, true},
		{"date against the server's Date", now.Add(-time.Hour + 5*time.Second).Format(http.TimeFormat), date, 5 * time.Second, true},
		{"date in the past", now.Add(-time.Minute).Format(http.TimeFormat), "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := RetryAfter(tt.v, tt.date, now, time.Minute)
			if d != tt.want || ok != tt.ok {
				t.Errorf("RetryAfter(%q) = %v, %v; want %v, %v", tt.v, d, ok, tt.want, tt.ok)
			}
		})
	}
}

// fakeTimer is a timer that fires only when told.
type fakeTimer struct {
	d       time.Duration
	f       func()
	stopped atomic.Bool
}

func (t *fakeTimer) Stop() bool { return !t.stopped.Swap(true) }

func TestSleep(t *testing.T) {
	started := make(chan *fakeTimer, 1)
	afterFunc := func(d time.Duration, f func()) *fakeTimer {
		ft := &fakeTimer{d: d, f: f}
		started <- ft
		return ft
	}
	t.Run("fires", func(t *testing.T) {
		errc := make(chan error, 1)
		go func() { errc <- Sleep(context.Background(), afterFunc, time.Hour) }()
		ft := <-started
		if ft.d != time.Hour {
			t.Errorf("timer set for %v, want 1h", ft.d)
		}
		ft.f()
		if err := <-errc; err != nil {
			t.Fatalf("Sleep = %v after its timer fired", err)
		}
	})
	t.Run("ctx ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := Sleep(ctx, afterFunc, time.Hour); !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep = %v, want context.Canceled", err)
		}
		if ft := <-started; !ft.stopped.Load() {
			t.Error("the timer was not stopped when ctx ended")
		}
	})
	t.Run("no wait", func(t *testing.T) {
		if err := Sleep(context.Background(), afterFunc, 0); err != nil || len(started) != 0 {
			t.Fatalf("Sleep(0) = %v, timer started: %v", err, len(started) != 0)
		}
	})
}
