package web

import (
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/time/rate"
)

// Requests in flight together cannot pass on one unspent budget, and a
// refunded event can be taken again.
func TestLimiterTakeIsAtomicAndRefunds(t *testing.T) {
	l := newLimiter(rate.Limit(1.0/3600), 3)
	var passed atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, ok := l.take("guesser"); ok {
				passed.Add(1)
			}
		})
	}
	wg.Wait()
	if got := passed.Load(); got != 3 {
		t.Fatalf("%d of 50 parallel requests passed a budget of 3", got)
	}
	other, ok := l.take("customer")
	if !ok {
		t.Fatal("another key shares the budget")
	}
	other()
	for i := range 3 {
		if _, ok := l.take("customer"); !ok {
			t.Fatalf("take %d after a refund refused: the refund did not give the event back", i+1)
		}
	}
	if _, ok := l.take("customer"); ok {
		t.Error("a fourth event passed a budget of 3")
	}
}
