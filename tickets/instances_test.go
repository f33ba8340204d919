package tickets_test

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/helpdeskgw/helpdesk/tickets"
)

func TestMailboxHoldersFollowTheLockConnections(t *testing.T) {
	s, _, _ := newStore(t, tickets.Options{})
	ctx := context.Background()
	open := func() (*tickets.MailboxLocks, tickets.InstanceID) {
		t.Helper()
		l, err := s.MailboxLocks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close(ctx) }) //nolint:errcheck // closed by the test already, or at its end
		self, err := l.Announce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return l, self
	}
	a, idA := open()
	b, idB := open()
	if idA == idB {
		t.Fatalf("two lock connections share the ID %d", idA)
	}
	for id, l := range map[int64]*tickets.MailboxLocks{1: a, 2: a, 3: b} {
		if got, err := l.TryLock(ctx, id); err != nil || !got {
			t.Fatalf("lock mailbox %d: %v, %v", id, got, err)
		}
	}
	if got, err := b.TryLock(ctx, 1); err != nil || got {
		t.Fatalf("mailbox 1 locked twice: %v, %v", got, err)
	}
	other, err := s.MailboxLocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx) //nolint:errcheck // test cleanup
	if got, err := other.TryLock(ctx, 9); err != nil || !got {
		t.Fatalf("lock mailbox 9: %v, %v", got, err)
	}

	for _, tc := range []struct {
		name      string
		change    func() error
		instances []tickets.InstanceID
		held      map[int64]tickets.InstanceID
	}{
		{name: "both present", change: func() error { return nil },
			instances: sorted(idA, idB), held: map[int64]tickets.InstanceID{1: idA, 2: idA, 3: idB}},
		{name: "a mailbox unlocked", change: func() error { return a.Unlock(ctx, 2) },
			instances: sorted(idA, idB), held: map[int64]tickets.InstanceID{1: idA, 3: idB}},
		{name: "an instance gone", change: func() error { return a.Close(ctx) },
			instances: []tickets.InstanceID{idB}, held: map[int64]tickets.InstanceID{3: idB}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.change(); err != nil {
				t.Fatal(err)
			}
			// A closed connection's server process ends, and lets its
			// locks go, a moment after the client has hung up.
			var got tickets.MailboxHolders
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				var err error
				if got, err = b.Holders(ctx); err != nil {
					t.Fatal(err)
				}
				if slices.Equal(got.Instances, tc.instances) || time.Now().After(deadline) {
					break
				}
			}
			if !slices.Equal(got.Instances, tc.instances) {
				t.Errorf("instances %v, want %v", got.Instances, tc.instances)
			}
			// The session that never announced itself holds its mailbox
			// without counting as an instance.
			if h, ok := got.Held[9]; !ok || h == idA || h == idB {
				t.Errorf("mailbox 9 held by %v (%v), want the third session", h, ok)
			}
			delete(got.Held, 9)
			if !maps.Equal(got.Held, tc.held) {
				t.Errorf("held %v, want %v", got.Held, tc.held)
			}
		})
	}
	if _, err := a.Holders(ctx); err == nil {
		t.Error("holders read on a closed lock connection")
	}
}

func sorted(ids ...tickets.InstanceID) []tickets.InstanceID {
	slices.Sort(ids)
	return ids
}
