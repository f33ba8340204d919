-- Departments: each has one address customers write to.
CREATE TABLE departments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name        text NOT NULL CHECK (name <> ''),
    -- Stored lower case; "support+tag@" is matched to "support@" before lookup.
    address     text NOT NULL UNIQUE CHECK (address = lower(address) AND address LIKE '_%@_%'),
    locale      text NOT NULL DEFAULT 'es' CHECK (locale IN ('es', 'en')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Content-addressed storage: every attachment and raw mail is stored once per
-- SHA-256, split in chunks so neither side ever holds a whole file in memory.
CREATE TABLE blobs (
    sha256      bytea PRIMARY KEY CHECK (length(sha256) = 32),
    size        bigint NOT NULL CHECK (size >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE blob_chunks (
    sha256  bytea NOT NULL REFERENCES blobs (sha256) ON DELETE CASCADE,
    seq     integer NOT NULL CHECK (seq >= 0),
    data    bytea NOT NULL,
    PRIMARY KEY (sha256, seq)
);
-- Attachments are mostly compressed already and raw mail is mostly base64:
-- compressing them costs CPU on the ingest path for little gain.
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE tickets (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tracking_id     text NOT NULL UNIQUE
                    CHECK (tracking_id ~ '^[AEUYBDGHJLMNPQRSTVWXZ1-9]{3}-[AEUYBDGHJLMNPQRSTVWXZ1-9]{3}-[AEUYBDGHJLMNPQRSTVWXZ1-9]{4}$'),
    department_id   bigint NOT NULL REFERENCES departments (id),
    subject         text NOT NULL,
    customer_name   text NOT NULL DEFAULT '',
    customer_email  text NOT NULL CHECK (customer_email LIKE '_%@_%'),
    status          text NOT NULL DEFAULT 'new'
                    CHECK (status IN ('new', 'waiting_reply', 'replied', 'in_progress', 'on_hold', 'resolved')),
    priority        text NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    locale          text NOT NULL CHECK (locale IN ('es', 'en')),
    source          text NOT NULL CHECK (source IN ('email', 'web')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tickets_customer_email ON tickets (lower(customer_email));
CREATE INDEX tickets_department_updated ON tickets (department_id, updated_at DESC);

-- The inbound log: one row per mail received, whatever became of it.
CREATE TABLE inbound (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    source          text NOT NULL CHECK (source IN ('smtp', 'imap')),
    -- Where it came from: the SMTP client's address, or mailbox/UIDVALIDITY/UID.
    source_ref      text NOT NULL DEFAULT '',
    department_id   bigint NOT NULL REFERENCES departments (id),
    envelope_from   text NOT NULL DEFAULT '',
    envelope_to     text NOT NULL DEFAULT '',
    message_id      text NOT NULL DEFAULT '',
    -- "id:<Message-ID> from:<From address>", or "sha256:<hex>" of the raw
    -- bytes when there is no Message-ID.
    dedupe_key      text NOT NULL,
    from_address    text NOT NULL DEFAULT '',
    subject         text NOT NULL DEFAULT '',
    raw_sha256      bytea NOT NULL REFERENCES blobs (sha256),
    raw_size        bigint NOT NULL,
    disposition     text NOT NULL CHECK (disposition IN ('ticket', 'duplicate', 'quarantined')),
    reason          text NOT NULL DEFAULT '',
    parse_problems  text NOT NULL DEFAULT '',
    ticket_id       bigint REFERENCES tickets (id) ON DELETE SET NULL
);
-- The same mail delivered twice to a department is stored as a ticket once;
-- later copies are logged as duplicates.
CREATE UNIQUE INDEX inbound_dedupe ON inbound (department_id, dedupe_key) WHERE disposition <> 'duplicate';
CREATE INDEX inbound_received ON inbound (received_at);
CREATE INDEX inbound_ticket ON inbound (ticket_id) WHERE ticket_id IS NOT NULL;

CREATE TABLE messages (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id        bigint NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    author_kind      text NOT NULL CHECK (author_kind IN ('customer', 'agent', 'system')),
    author_name      text NOT NULL DEFAULT '',
    author_email     text NOT NULL DEFAULT '',
    body_text        text NOT NULL,
    -- Sanitized before it is stored; never the customer's HTML as sent.
    body_html        text NOT NULL DEFAULT '',
    inbound_id       bigint REFERENCES inbound (id),
    mail_message_id  text NOT NULL DEFAULT '',
    internal         boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_ticket ON messages (ticket_id, id);

CREATE TABLE attachments (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id    bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    ticket_id     bigint NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    filename      text NOT NULL,
    content_type  text NOT NULL,
    content_id    text NOT NULL DEFAULT '',
    inline        boolean NOT NULL DEFAULT false,
    size          bigint NOT NULL CHECK (size >= 0),
    sha256        bytea NOT NULL REFERENCES blobs (sha256)
);
CREATE INDEX attachments_message ON attachments (message_id);
CREATE INDEX attachments_ticket ON attachments (ticket_id);

CREATE TABLE ticket_history (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id  bigint NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    at         timestamptz NOT NULL DEFAULT now(),
    -- "customer:<address>", "agent:<id>" or "system".
    actor      text NOT NULL,
    action     text NOT NULL,
    old_value  text NOT NULL DEFAULT '',
    new_value  text NOT NULL DEFAULT ''
);
CREATE INDEX ticket_history_ticket ON ticket_history (ticket_id, id);

-- Only the SHA-256 of a token is stored; the token itself exists in the mail
-- that carried it and nowhere else.
CREATE TABLE tokens (
    hash        bytea PRIMARY KEY CHECK (length(hash) = 32),
    scope       text NOT NULL CHECK (scope IN ('ticket')),
    ticket_id   bigint NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX tokens_ticket ON tokens (ticket_id);
CREATE INDEX tokens_expires ON tokens (expires_at);

-- Mail to send, written in the same transaction as the change that causes it.
CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('ack')),
    ticket_id       bigint NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    recipient       text NOT NULL,
    -- Chosen when the row is written, so every retry carries the same one and
    -- replies to it can be recognized.
    message_id      text NOT NULL UNIQUE,
    in_reply_to     text NOT NULL DEFAULT '',
    reference_ids   text[] NOT NULL DEFAULT '{}',
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt    timestamptz NOT NULL DEFAULT now(),
    last_error      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX outbox_due ON outbox (next_attempt) WHERE state = 'pending';
CREATE INDEX outbox_ticket ON outbox (ticket_id);
