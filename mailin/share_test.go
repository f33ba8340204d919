package mailin

import (
	"cmp"
	"maps"
	"slices"
	"testing"

	"github.com/helpdeskgw/helpdesk/tickets"
)

func ids(from, to int64) []int64 {
	var out []int64
	for id := from; id <= to; id++ {
		out = append(out, id)
	}
	return out
}

func heldBy(holder tickets.InstanceID, mailboxes []int64, into map[int64]tickets.InstanceID) map[int64]tickets.InstanceID {
	if into == nil {
		into = map[int64]tickets.InstanceID{}
	}
	for _, id := range mailboxes {
		into[id] = holder
	}
	return into
}

func TestPlanShare(t *testing.T) {
	const a, b, c = 101, 102, 103
	for _, tc := range []struct {
		name        string
		view        shareView
		wantRelease int
		wantTake    int
	}{
		{name: "alone takes everything",
			view:     shareView{self: a, instances: []tickets.InstanceID{a}, wanted: ids(1, 10)},
			wantTake: 10},
		{name: "a second instance joins: the holder lets half go",
			view:        shareView{self: a, instances: []tickets.InstanceID{a, b}, wanted: ids(1, 10), held: heldBy(a, ids(1, 10), nil)},
			wantRelease: 5},
		{name: "the newcomer waits while nothing is free",
			view: shareView{self: b, instances: []tickets.InstanceID{a, b}, wanted: ids(1, 10), held: heldBy(a, ids(1, 10), nil)}},
		{name: "the newcomer takes what was let go",
			view:     shareView{self: b, instances: []tickets.InstanceID{a, b}, wanted: ids(1, 10), held: heldBy(a, ids(1, 5), nil)},
			wantTake: 5},
		{name: "mailboxes being let go count as gone",
			view: shareView{self: a, instances: []tickets.InstanceID{a, b}, wanted: ids(1, 10), held: heldBy(a, ids(1, 10), nil),
				leaving: map[int64]bool{6: true, 7: true, 8: true, 9: true, 10: true}}},
		{name: "a third joins: above the ceiling lets the surplus go",
			view:        shareView{self: b, instances: []tickets.InstanceID{a, b, c}, wanted: ids(1, 10), held: heldBy(b, ids(6, 10), heldBy(a, ids(1, 5), nil))},
			wantRelease: 1},
		{name: "at the ceiling, the first lender lends to an instance below the floor",
			view:        shareView{self: a, instances: []tickets.InstanceID{a, b, c}, wanted: ids(1, 10), held: heldBy(c, ids(9, 10), heldBy(b, ids(5, 8), heldBy(a, ids(1, 4), nil)))},
			wantRelease: 1},
		{name: "the second lender is not needed",
			view: shareView{self: b, instances: []tickets.InstanceID{a, b, c}, wanted: ids(1, 10), held: heldBy(c, ids(9, 10), heldBy(b, ids(5, 8), heldBy(a, ids(1, 4), nil)))}},
		{name: "no lending while the lack is made up by free mailboxes",
			view: shareView{self: a, instances: []tickets.InstanceID{a, b, c}, wanted: ids(1, 10), held: heldBy(c, ids(8, 8), heldBy(b, ids(5, 7), heldBy(a, ids(1, 4), nil)))}},
		{name: "below the floor takes up to the floor",
			view:     shareView{self: c, instances: []tickets.InstanceID{a, b, c}, wanted: ids(1, 10), held: heldBy(c, ids(9, 9), heldBy(b, ids(5, 7), heldBy(a, ids(1, 4), nil)))},
			wantTake: 2},
		{name: "starting together: the first in ID order takes the extra",
			view:     shareView{self: a, instances: []tickets.InstanceID{a, b, c}, wanted: ids(1, 10)},
			wantTake: 4},
		{name: "starting together: the others take the floor",
			view:     shareView{self: c, instances: []tickets.InstanceID{a, b, c}, wanted: ids(1, 10)},
			wantTake: 3},
		{name: "one mailbox stays where it is",
			view: shareView{self: a, instances: []tickets.InstanceID{a, b}, wanted: ids(1, 1), held: heldBy(a, ids(1, 1), nil)}},
		{name: "one free mailbox goes to the first in ID order only",
			view: shareView{self: b, instances: []tickets.InstanceID{a, b}, wanted: ids(1, 1)}},
		{name: "a holder that never announced itself counts as an instance",
			view:     shareView{self: a, instances: []tickets.InstanceID{a}, wanted: ids(1, 10), held: heldBy(99, ids(1, 5), nil)},
			wantTake: 5},
		{name: "disabled mailboxes still locked do not count",
			view:     shareView{self: b, instances: []tickets.InstanceID{a, b}, wanted: ids(1, 4), held: heldBy(a, ids(1, 10), nil)},
			wantTake: 0},
		{name: "no mailboxes",
			view: shareView{self: a, instances: []tickets.InstanceID{a, b}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := planShare(tc.view)
			if len(plan.release) != tc.wantRelease || plan.take != tc.wantTake {
				t.Fatalf("release %v, take %d of %v; want %d released, %d taken",
					plan.release, plan.take, plan.candidates, tc.wantRelease, tc.wantTake)
			}
			for _, id := range plan.release {
				if tc.view.held[id] != tc.view.self || tc.view.leaving[id] {
					t.Errorf("releases mailbox %d, which it does not poll", id)
				}
			}
			if plan.take > 0 {
				var unheld []int64
				for _, id := range tc.view.wanted {
					if _, ok := tc.view.held[id]; !ok {
						unheld = append(unheld, id)
					}
				}
				if !slices.Equal(slices.Sorted(slices.Values(plan.candidates)), unheld) {
					t.Errorf("candidates %v, want the unheld mailboxes %v", plan.candidates, unheld)
				}
			}
		})
	}
}

// cluster simulates instances sharing mailboxes through the lock table:
// each in turn unlocks what it let go of at its previous turn, reads the
// table, and follows its plan.
type cluster struct {
	wanted  []int64
	held    map[int64]tickets.InstanceID
	leaving map[tickets.InstanceID]map[int64]bool
	moves   int
}

func (cl *cluster) turn(self tickets.InstanceID, instances []tickets.InstanceID) (changed bool) {
	for id := range cl.leaving[self] {
		delete(cl.held, id)
		changed = true
	}
	cl.leaving[self] = map[int64]bool{}
	plan := planShare(shareView{self: self, instances: instances, wanted: cl.wanted, held: maps.Clone(cl.held), leaving: cl.leaving[self]})
	for _, id := range plan.release {
		cl.leaving[self][id] = true
		cl.moves++
		changed = true
	}
	took := 0
	for _, id := range plan.candidates {
		if took == plan.take {
			break
		}
		if _, ok := cl.held[id]; !ok {
			cl.held[id] = self
			took++
			changed = true
		}
	}
	return changed
}

func (cl *cluster) counts(instances []tickets.InstanceID) []int {
	var out []int
	for _, inst := range instances {
		n := 0
		for _, h := range cl.held {
			if h == inst {
				n++
			}
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func TestSharingConvergesWithoutFlapping(t *testing.T) {
	const a, b, c, d = 11, 12, 13, 14
	for _, tc := range []struct {
		name      string
		mailboxes int64
		held      map[int64]tickets.InstanceID
		instances []tickets.InstanceID
		want      []int
		maxMoves  int
	}{
		{name: "a second instance joins", mailboxes: 10, held: heldBy(a, ids(1, 10), nil),
			instances: []tickets.InstanceID{a, b}, want: []int{5, 5}, maxMoves: 5},
		{name: "a third instance joins", mailboxes: 10, held: heldBy(b, ids(6, 10), heldBy(a, ids(1, 5), nil)),
			instances: []tickets.InstanceID{a, b, c}, want: []int{3, 3, 4}, maxMoves: 3},
		{name: "the newcomer has the lowest ID", mailboxes: 10, held: heldBy(c, ids(6, 10), heldBy(b, ids(1, 5), nil)),
			instances: []tickets.InstanceID{a, b, c}, want: []int{3, 3, 4}, maxMoves: 3},
		{name: "an instance leaves", mailboxes: 10, held: heldBy(b, ids(5, 7), heldBy(a, ids(1, 4), nil)),
			instances: []tickets.InstanceID{a, b}, want: []int{5, 5}, maxMoves: 0},
		{name: "three start together", mailboxes: 10, held: map[int64]tickets.InstanceID{},
			instances: []tickets.InstanceID{a, b, c}, want: []int{3, 3, 4}, maxMoves: 0},
		{name: "balanced stays put", mailboxes: 10, held: heldBy(c, ids(8, 10), heldBy(b, ids(5, 7), heldBy(a, ids(1, 4), nil))),
			instances: []tickets.InstanceID{a, b, c}, want: []int{3, 3, 4}, maxMoves: 0},
		{name: "one mailbox, two instances", mailboxes: 1, held: heldBy(b, ids(1, 1), nil),
			instances: []tickets.InstanceID{a, b}, want: []int{0, 1}, maxMoves: 0},
		{name: "two hundred, a fourth joins", mailboxes: 200,
			held:      heldBy(c, ids(135, 200), heldBy(b, ids(68, 134), heldBy(a, ids(1, 67), nil))),
			instances: []tickets.InstanceID{a, b, c, d}, want: []int{50, 50, 50, 50}, maxMoves: 50},
	} {
		for _, order := range []string{"ascending", "descending"} {
			t.Run(tc.name+", turns "+order, func(t *testing.T) {
				cl := &cluster{wanted: ids(1, tc.mailboxes), held: maps.Clone(tc.held), leaving: map[tickets.InstanceID]map[int64]bool{}}
				turns := slices.Clone(tc.instances)
				if order == "descending" {
					slices.Reverse(turns)
				}
				rounds := 0
				for changed := true; changed; rounds++ {
					if rounds == 10 {
						t.Fatalf("still moving after %d rounds: %v", rounds, cl.counts(tc.instances))
					}
					changed = false
					for _, inst := range turns {
						if cl.turn(inst, tc.instances) {
							changed = true
						}
					}
				}
				if got := cl.counts(tc.instances); !slices.Equal(got, tc.want) {
					t.Errorf("shares %v, want %v", got, tc.want)
				}
				if len(cl.held) != int(tc.mailboxes) {
					t.Errorf("%d of %d mailboxes held", len(cl.held), tc.mailboxes)
				}
				if cl.moves > tc.maxMoves {
					t.Errorf("%d mailboxes moved, want %d at most", cl.moves, tc.maxMoves)
				}
			})
		}
	}
}

func TestRendezvousDiffersByInstance(t *testing.T) {
	// Each of three instances ranks a different mailbox first, most of
	// the time: they seldom reach for the same one.
	same := 0
	for m := range int64(100) {
		batch := ids(m*10+1, m*10+10)
		first := func(inst tickets.InstanceID) int64 {
			return slices.MaxFunc(batch, func(x, y int64) int {
				return cmp.Compare(rendezvous(x, inst), rendezvous(y, inst))
			})
		}
		if first(1) == first(2) {
			same++
		}
	}
	// Independent rankings of ten agree on the first one time in ten.
	if same > 25 {
		t.Errorf("two instances rank the same mailbox first in %d of 100 batches", same)
	}
}
