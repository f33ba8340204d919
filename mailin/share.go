package mailin

import (
	"cmp"
	"slices"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// shareView is what one instance knows when it decides which mailboxes to
// hold: the lock table's picture, and its own pollers being let go.
type shareView struct {
	self tickets.InstanceID
	// instances are the instances announced; self is counted either way.
	instances []tickets.InstanceID
	// wanted are the enabled mailboxes.
	wanted []int64
	// held maps each locked mailbox to its holder.
	held map[int64]tickets.InstanceID
	// leaving are mailboxes self still holds but is letting go.
	leaving map[int64]bool
}

// sharePlan is what one instance does at a refresh: let go of release (the
// pollers finish their batch, then the locks are freed), and try to take
// up to take of candidates, in order.
type sharePlan struct {
	release    []int64
	candidates []int64
	take       int
}

// planShare shares the mailboxes out among the instances so that each
// holds the floor or the ceiling of mailboxes/instances. It is computed by
// every instance on its own from the same lock table, so each rule names
// who moves, and only so many that none of them undoes another's move:
//
//   - an instance holding more than the ceiling lets go of the surplus;
//   - an instance below the floor takes unheld mailboxes up to the floor;
//   - what is left once every instance can reach the floor goes one each,
//     up to the ceiling, to the instances in ID order;
//   - when an instance is below the floor and nothing is left for it,
//     instances at the ceiling lend one each, in ID order, as many as it
//     lacks.
//
// Nobody lets go of a mailbox while holding no more than the ceiling
// unless another instance lacks one, so a balanced share is left alone.
// Which mailboxes move follows rendezvous hashing: an instance takes those
// it ranks highest and lets go of those it ranks lowest, so that two
// instances seldom reach for the same one.
func planShare(v shareView) sharePlan {
	count := map[tickets.InstanceID]int{v.self: 0}
	for _, inst := range v.instances {
		count[inst] = 0
	}
	var mine, unheld []int64
	letGo := 0
	for _, id := range v.wanted {
		holder, ok := v.held[id]
		switch {
		case !ok:
			unheld = append(unheld, id)
		case holder != v.self:
			// A holder that has not announced itself (an older version,
			// say) still holds its share.
			count[holder]++
		case v.leaving[id]:
			letGo++
		default:
			mine = append(mine, id)
			count[holder]++
		}
	}
	n, m := len(count), len(v.wanted)
	if m == 0 {
		return sharePlan{}
	}
	ceil, floor := (m+n-1)/n, m/n
	instances := slices.Sorted(func(yield func(tickets.InstanceID) bool) {
		for inst := range count {
			if !yield(inst) {
				return
			}
		}
	})
	byRank := func(ids []int64, best bool) []int64 {
		ids = slices.Clone(ids)
		slices.SortFunc(ids, func(a, b int64) int {
			c := cmp.Compare(rendezvous(a, v.self), rendezvous(b, v.self))
			if best {
				c = -c
			}
			return cmp.Or(c, cmp.Compare(a, b))
		})
		return ids
	}

	if len(mine) > ceil {
		return sharePlan{release: byRank(mine, false)[:len(mine)-ceil]}
	}
	// Each instance as it will be once everyone's surplus is unheld, and
	// what will be free then (self's pollers being let go included).
	free := len(unheld) + letGo
	for inst, h := range count {
		if h > ceil {
			free += h - ceil
			count[inst] = ceil
		}
	}
	lacking := 0
	for _, h := range count {
		lacking += max(0, floor-h)
	}
	if short := lacking - free; short > 0 && len(mine) == ceil && ceil > floor {
		var lenders []tickets.InstanceID
		for _, inst := range instances {
			if count[inst] == ceil {
				lenders = append(lenders, inst)
			}
		}
		if slices.Index(lenders, v.self) < short {
			return sharePlan{release: byRank(mine, false)[:1]}
		}
		return sharePlan{}
	}
	if len(unheld) == 0 {
		return sharePlan{}
	}
	take := max(0, floor-len(mine))
	// Extras: what is free beyond every instance's floor, one each in ID
	// order to the instances that will still be below the ceiling.
	extras := free - lacking
	for _, inst := range instances {
		if extras <= 0 {
			break
		}
		if max(count[inst], floor) >= ceil {
			continue
		}
		if inst == v.self {
			take++
			break
		}
		extras--
	}
	return sharePlan{candidates: byRank(unheld, true), take: min(take, len(unheld))}
}

// rendezvous is how much instance wants mailbox: the same on every
// instance, and unrelated between instances.
func rendezvous(mailboxID int64, instance tickets.InstanceID) uint64 {
	return mix64(uint64(mailboxID) ^ mix64(uint64(uint32(instance))|1<<32))
}

// mix64 is SplitMix64's finalizer: every bit of x moves about half of the
// result's.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
