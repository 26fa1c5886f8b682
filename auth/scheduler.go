package auth

import (
	"container/heap"
	"sync"
	"time"
)

// scheduler calls engines' refreshDue at their due times with one timer of
// its clock for all of them, instead of a timer per engine: a handler then
// holds a heap slot (24 bytes) rather than a runtime timer (about 130), and
// a process with thousands of idle engines has one timer pending, not
// thousands. Engines on the system clock share systemScheduler; an engine
// on any other clock has a scheduler of its own.
type scheduler struct {
	clock Clock

	mu      sync.Mutex // guards the fields below
	entries schedHeap
	timer   Timer  // due at entries[0].at, if any
	timerAt int64  // when timer is due
	gen     uint64 // of timer: a fire of an older one, stopped too late, leaves it be
}

// systemScheduler serves every engine on the system clock.
var systemScheduler = &scheduler{clock: systemClock{}}

// schedEntry is an engine due at at (Unix ns).
type schedEntry struct {
	at int64
	e  *Engine
}

// schedHeap is a min-heap of entries by due time; each engine knows its index.
type schedHeap []schedEntry

func (h schedHeap) Len() int           { return len(h) }
func (h schedHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h schedHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].e.schedIdx = i
	h[j].e.schedIdx = j
}
func (h *schedHeap) Push(x any) {
	en := x.(schedEntry)
	en.e.schedIdx = len(*h)
	*h = append(*h, en)
}
func (h *schedHeap) Pop() any {
	old := *h
	en := old[len(old)-1]
	old[len(old)-1] = schedEntry{}
	*h = old[:len(old)-1]
	en.e.schedIdx = -1
	return en
}

// set schedules e's refreshDue at at (Unix ns), replacing any earlier
// schedule of e; at 0 cancels it.
func (s *scheduler) set(e *Engine, at int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case e.schedIdx >= 0 && at == 0:
		heap.Remove(&s.entries, e.schedIdx)
	case e.schedIdx >= 0:
		s.entries[e.schedIdx].at = at
		heap.Fix(&s.entries, e.schedIdx)
	case at != 0:
		heap.Push(&s.entries, schedEntry{at: at, e: e})
	}
	s.armLocked()
}

// armLocked keeps the one timer due at the earliest entry.
func (s *scheduler) armLocked() {
	if len(s.entries) == 0 {
		if s.timer != nil {
			s.timer.Stop()
			s.timer, s.timerAt = nil, 0
		}
		return
	}
	at := s.entries[0].at
	if s.timer != nil && s.timerAt == at {
		return
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	d := at - s.clock.Now().UnixNano()
	s.gen++
	gen := s.gen
	s.timer, s.timerAt = s.clock.AfterFunc(max(0, time.Duration(d)), func() { s.fire(gen) }), at
}

// fire runs the engines that are due, outside the lock. gen is the timer's.
func (s *scheduler) fire(gen uint64) {
	s.mu.Lock()
	now := s.clock.Now().UnixNano()
	var due []*Engine
	for len(s.entries) > 0 && s.entries[0].at <= now {
		due = append(due, heap.Pop(&s.entries).(schedEntry).e)
	}
	if gen == s.gen {
		s.timer, s.timerAt = nil, 0
	}
	s.armLocked()
	s.mu.Unlock()
	for _, e := range due {
		e.refreshDue()
	}
}

// pending returns how many engines are scheduled.
func (s *scheduler) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}
