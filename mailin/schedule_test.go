package mailin

import (
	"fmt"
	"testing"
	"time"
)

func TestPollOffsetsSpreadOverTheInterval(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first int64 // mailbox IDs first … first+99
		every time.Duration
		// slot is the width within which at most maxPerSlot polls fall.
		slot       time.Duration
		maxPerSlot int
	}{
		{name: "100 mailboxes every minute", first: 1, every: time.Minute, slot: time.Second, maxPerSlot: 3},
		{name: "IDs not from 1", first: 4711, every: time.Minute, slot: time.Second, maxPerSlot: 3},
		{name: "every 5 s", first: 1, every: 5 * time.Second, slot: 100 * time.Millisecond, maxPerSlot: 3},
		{name: "every day", first: 1, every: 24 * time.Hour, slot: 15 * time.Minute, maxPerSlot: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			perSlot := map[time.Duration]int{}
			perTenth := make([]int, 10)
			for id := tc.first; id < tc.first+100; id++ {
				off := pollOffset(id, tc.every)
				if off < 0 || off >= tc.every {
					t.Fatalf("mailbox %d: offset %v outside [0, %v)", id, off, tc.every)
				}
				perSlot[off/tc.slot]++
				perTenth[off*10/tc.every]++
			}
			for slot, n := range perSlot {
				if n > tc.maxPerSlot {
					t.Errorf("%d mailboxes polled within %v of %v", n, tc.slot, slot*tc.slot)
				}
			}
			for i, n := range perTenth {
				if n < 8 || n > 12 {
					t.Errorf("tenth %d of the interval has %d of 100 mailboxes, want about 10", i, n)
				}
			}
		})
	}
}

func TestPollScheduleFiresOnItsOffset(t *testing.T) {
	base := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		id    int64
		every time.Duration
		at    time.Time
	}{
		{name: "minute", id: 7, every: time.Minute, at: base},
		{name: "just after a firing", id: 7, every: time.Minute, at: base.Add(time.Nanosecond)},
		{name: "odd interval", id: 12345, every: 37 * time.Second, at: base.Add(123456789)},
		{name: "before the epoch", id: 3, every: time.Hour, at: time.Date(1960, 1, 1, 0, 0, 0, 5, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newPollSchedule(tc.id, tc.every)
			next := s.Next(tc.at)
			if !next.After(tc.at) || next.Sub(tc.at) > tc.every {
				t.Errorf("next %v after %v: want within one interval of %v", next, tc.at, tc.every)
			}
			if phase := (next.UnixNano() - int64(s.offset)) % int64(tc.every); phase != 0 {
				t.Errorf("next %v is %v off its grid", next, time.Duration(phase))
			}
			if at := s.Next(next); at.Sub(next) != tc.every {
				t.Errorf("firing after %v at %v: want one interval later", next, at)
			}
			// A firing exactly on the grid is not repeated.
			if s.Next(next.Add(-time.Nanosecond)) != next {
				t.Errorf("next before %v is %v", next, s.Next(next.Add(-time.Nanosecond)))
			}
		})
	}
	// Mailboxes connected in the same instant poll at different seconds.
	seconds := map[int64]bool{}
	for id := int64(1); id <= 60; id++ {
		seconds[newPollSchedule(id, time.Minute).Next(base).Unix()] = true
	}
	if len(seconds) < 50 {
		t.Errorf("60 mailboxes polled at %d distinct seconds of the minute", len(seconds))
	}
}

func TestStartDelaysPaceTheLogins(t *testing.T) {
	const refresh = 5 * time.Second
	for _, tc := range []struct {
		n        int
		wantLast time.Duration
	}{
		{n: 1, wantLast: 0},
		{n: 2, wantLast: loginGap},
		{n: 200, wantLast: 199 * loginGap},
		{n: 1000, wantLast: 999 * refresh / 1000},
	} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			prev := time.Duration(-1)
			for i := range tc.n {
				d := startDelay(i, tc.n, refresh)
				if d <= prev {
					t.Fatalf("start %d waits %v, not after the previous %v", i, d, prev)
				}
				if i > 0 && d-prev > loginGap {
					t.Fatalf("start %d waits %v after the previous, more than %v", i, d-prev, loginGap)
				}
				prev = d
			}
			if got := startDelay(0, tc.n, refresh); got != 0 {
				t.Errorf("first waits %v", got)
			}
			if got := startDelay(tc.n-1, tc.n, refresh); got != tc.wantLast || got >= refresh {
				t.Errorf("last waits %v, want %v, within the refresh of %v", got, tc.wantLast, refresh)
			}
		})
	}
}
