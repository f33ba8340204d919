-- The customer's web portal: tickets submitted from the web, sessions that
-- remember which tickets a visitor has shown a right to, and the mail that
-- lists a customer's open tickets when they have lost the tracking ID.

-- A visitor's session. Only the SHA-256 of its ID is stored, as for tokens.
CREATE TABLE sessions (
    hash        bytea PRIMARY KEY CHECK (length(hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- The tickets a session may see and answer, and how it came to.
CREATE TABLE session_tickets (
    session_hash  bytea NOT NULL REFERENCES sessions (hash) ON DELETE CASCADE,
    ticket_id     bigint NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    via           text NOT NULL CHECK (via IN ('token', 'lookup', 'submit')),
    -- Access gained through a mailed link lasts no longer than the link:
    -- revoking or expiring it ends the access it gave.
    token_hash    bytea REFERENCES tokens (hash) ON DELETE CASCADE,
    granted_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_hash, ticket_id),
    CHECK ((via = 'token') = (token_hash IS NOT NULL))
);
CREATE INDEX session_tickets_ticket ON session_tickets (ticket_id);
CREATE INDEX session_tickets_token ON session_tickets (token_hash) WHERE token_hash IS NOT NULL;

-- A reminder lists a customer's open tickets, each with a fresh link. Its
-- ticket_id is the first ticket listed: that ticket's department sends it.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('ack', 'reminder'));
-- The language of the mail when it is not the ticket's ('' for the ticket's).
ALTER TABLE outbox ADD COLUMN locale text NOT NULL DEFAULT '' CHECK (locale IN ('', 'es', 'en'));

CREATE TABLE outbox_tickets (
    outbox_id  bigint NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    position   integer NOT NULL CHECK (position >= 0),
    ticket_id  bigint NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    PRIMARY KEY (outbox_id, position)
);
CREATE INDEX outbox_tickets_ticket ON outbox_tickets (ticket_id);

-- Reminders are limited per address: this finds the recent ones.
CREATE INDEX outbox_reminders ON outbox (lower(recipient), created_at) WHERE kind = 'reminder';
