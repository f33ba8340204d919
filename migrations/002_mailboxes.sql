-- IMAP mailboxes: one per department at most. Mail found in one becomes a
-- ticket of its department, as if it had reached the SMTP listener.
CREATE TABLE mailboxes (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    department_id   bigint NOT NULL UNIQUE REFERENCES departments (id) ON DELETE CASCADE,
    -- imaps://user@host:993/INBOX, imap://… (STARTTLS); never a password.
    url             text NOT NULL CHECK (url ~ '^imaps?://'),
    -- Where the password is, not the password: "env:VAR" or "file:/path".
    password_ref    text NOT NULL CHECK (password_ref ~ '^(env|file):.'),
    -- Folder processed mail is moved to; '' keeps it in place, flagged \Seen.
    move_to         text NOT NULL DEFAULT '',
    -- How often a server without IDLE is polled.
    poll_seconds    integer NOT NULL DEFAULT 60 CHECK (poll_seconds BETWEEN 5 AND 86400),
    enabled         boolean NOT NULL DEFAULT true,
    -- Bumped by every change of the settings above: a poller started with
    -- an older version restarts with the new settings.
    version         integer NOT NULL DEFAULT 1,

    -- Progress: mail up to last_uid of this UIDVALIDITY is in the inbound log.
    uid_validity    bigint NOT NULL DEFAULT 0,
    last_uid        bigint NOT NULL DEFAULT 0,
    ingested        bigint NOT NULL DEFAULT 0,

    -- What the poller is doing, for `mailbox list` and the staff.
    state           text NOT NULL DEFAULT 'waiting'
                    CHECK (state IN ('waiting', 'connecting', 'connected', 'idling', 'polling', 'error', 'disabled')),
    state_at        timestamptz NOT NULL DEFAULT now(),
    -- The instance polling it (host and process), while one does.
    holder          text NOT NULL DEFAULT '',
    last_error      text NOT NULL DEFAULT '',
    last_error_at   timestamptz,
    last_success_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
