package tickets

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// instanceLockClass is the first key of the lock every instance polling
// mailboxes holds, shared, on its lock connection ("inst"); the second
// key is 0.
//
// Instances announce themselves with this lock rather than with rows
// refreshed in a table: presence and mailbox locks then live and die
// together, with the one connection. An instance that stops or dies stops
// counting the moment its mailboxes are free, never earlier (which would
// leave its mailboxes to no one for a while) nor later (which would keep
// the others' shares too small); and there is no heartbeat to write, no
// row to clean up and no clock to trust.
const instanceLockClass = 0x696e7374

// InstanceID names an instance polling mailboxes while its lock connection
// lives: the PostgreSQL backend process of that connection, unique among
// the live ones.
type InstanceID int32

// Announce makes the instance count among those polling mailboxes, for as
// long as the lock connection lives, and returns its ID.
func (l *MailboxLocks) Announce(ctx context.Context) (InstanceID, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var self InstanceID
	var present bool
	err := l.conn.QueryRow(ctx, `SELECT pg_backend_pid(), pg_try_advisory_lock_shared($1::int, 0)`, instanceLockClass).
		Scan(&self, &present)
	if err != nil {
		return 0, fmt.Errorf("announce the instance: %w", err)
	}
	if !present {
		return 0, errors.New("announce the instance: another session holds the instances' lock exclusively")
	}
	return self, nil
}

// MailboxHolders is which instances are present and which mailbox each
// holds, as PostgreSQL's lock table says at one moment.
type MailboxHolders struct {
	// Instances are the announced instances, in ascending order.
	Instances []InstanceID
	// Held maps each locked mailbox to the instance holding it.
	Held map[int64]InstanceID
}

// Holders reads the instances announced and the mailbox locks each holds,
// from every session on this database. It fails when the lock connection
// is lost, and so doubles as a check that the locks are still there.
func (l *MailboxLocks) Holders(ctx context.Context) (MailboxHolders, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A lock on two int4 keys shows them as classid and objid, with
	// objsubid 2. Advisory locks belong to a database: another database on
	// the same server (another deployment, a test) is left out.
	rows, err := l.conn.Query(ctx, `
		SELECT classid::bigint, objid::bigint, pid FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 2
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND classid::bigint IN ($1, $2)`, int64(instanceLockClass), int64(mailboxLockClass))
	if err != nil {
		return MailboxHolders{}, fmt.Errorf("read mailbox holders: %w", err)
	}
	h := MailboxHolders{Held: map[int64]InstanceID{}}
	var class, key int64
	var pid InstanceID
	_, err = pgx.ForEachRow(rows, []any{&class, &key, &pid}, func() error {
		if class == instanceLockClass {
			h.Instances = append(h.Instances, pid)
		} else {
			h.Held[key] = pid
		}
		return nil
	})
	if err != nil {
		return MailboxHolders{}, fmt.Errorf("read mailbox holders: %w", err)
	}
	slices.Sort(h.Instances)
	return h, nil
}
