package mailin

import (
	"math/bits"
	"time"
)

// pollOffset is where in each interval a mailbox without IDLE is polled.
// Fibonacci hashing of the ID spreads any run of mailbox IDs evenly over
// the interval (consecutive IDs land far apart, and n of them leave gaps of
// at most three sizes), so a hundred mailboxes polled every minute are
// never polled in the same second; and the offset is the same on every
// instance, so a mailbox keeps its rhythm when another instance takes it.
func pollOffset(mailboxID int64, every time.Duration) time.Duration {
	if every <= 0 {
		return 0
	}
	hi, _ := bits.Mul64(uint64(mailboxID)*0x9e3779b97f4a7c15, uint64(every))
	return time.Duration(hi)
}

// pollSchedule is a cron schedule firing every interval at a fixed offset
// from the Unix epoch: at offset, offset+every, offset+2·every…
type pollSchedule struct {
	every, offset time.Duration
}

func newPollSchedule(mailboxID int64, every time.Duration) pollSchedule {
	return pollSchedule{every: every, offset: pollOffset(mailboxID, every)}
}

// Next is the first firing strictly after t.
func (s pollSchedule) Next(t time.Time) time.Time {
	since := t.UnixNano() - int64(s.offset)
	k := since / int64(s.every)
	if since < 0 && since%int64(s.every) != 0 {
		k-- // floor, for times before the epoch
	}
	return time.Unix(0, (k+1)*int64(s.every)+int64(s.offset))
}

// loginGap paces the first logins of pollers started together (at an
// instance's start, or when it takes over another's mailboxes): fifty a
// second, so that the server is not asked for hundreds at once.
const loginGap = 20 * time.Millisecond

// startDelay is how long the i-th of n pollers started together waits
// before it connects: i login gaps, narrowed so that all have started
// within one refresh.
func startDelay(i, n int, refresh time.Duration) time.Duration {
	if n <= 1 || i <= 0 {
		return 0
	}
	return time.Duration(i) * min(loginGap, refresh/time.Duration(n))
}
