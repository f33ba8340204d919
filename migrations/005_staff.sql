-- The staff: agents who answer tickets of their departments, admins who
-- also manage the desk; their sessions, canned responses, the audit log of
-- what admins change, and the scheduled jobs' record.

CREATE TABLE agents (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email           text NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '_%@_%'),
    name            text NOT NULL CHECK (name <> ''),
    role            text NOT NULL DEFAULT 'agent' CHECK (role IN ('admin', 'agent')),
    -- argon2id, in the PHC string format ($argon2id$v=19$m=…,t=…,p=…$salt$hash).
    password_hash   text NOT NULL,
    -- Mailed when a ticket arrives in one of the agent's departments.
    notify_new      boolean NOT NULL DEFAULT true,
    disabled_at     timestamptz,
    -- Repeated failed logins lock the account for a while.
    failed_logins   integer NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    last_login_at   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- The departments an agent works; admins see every department.
CREATE TABLE agent_departments (
    agent_id       bigint NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    department_id  bigint NOT NULL REFERENCES departments (id) ON DELETE CASCADE,
    PRIMARY KEY (agent_id, department_id)
);
CREATE INDEX agent_departments_department ON agent_departments (department_id);

-- A logged-in agent's session; only the SHA-256 of its ID is stored.
CREATE TABLE staff_sessions (
    hash        bytea PRIMARY KEY CHECK (length(hash) = 32),
    agent_id    bigint NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX staff_sessions_agent ON staff_sessions (agent_id);
CREATE INDEX staff_sessions_expires ON staff_sessions (expires_at);

ALTER TABLE tickets ADD COLUMN assignee_id bigint REFERENCES agents (id) ON DELETE SET NULL;
CREATE INDEX tickets_assignee ON tickets (assignee_id, updated_at DESC) WHERE assignee_id IS NOT NULL;
CREATE INDEX tickets_status_updated ON tickets (status, updated_at DESC);
CREATE INDEX tickets_updated ON tickets (updated_at DESC, id DESC);

-- Search in Spanish and English at once: a word is found by its stem in
-- either language.
CREATE INDEX tickets_subject_fts ON tickets
    USING gin ((to_tsvector('spanish', subject) || to_tsvector('english', subject)));
CREATE INDEX messages_body_fts ON messages
    USING gin ((to_tsvector('spanish', left(body_text, 100000)) || to_tsvector('english', left(body_text, 100000))));

ALTER TABLE messages ADD COLUMN agent_id bigint REFERENCES agents (id) ON DELETE SET NULL;

-- Departments may resolve tickets left in Replied for some days.
ALTER TABLE departments ADD COLUMN auto_resolve_days integer CHECK (auto_resolve_days IS NULL OR auto_resolve_days > 0);

-- Mail to agents and the mails answering customers.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('ack', 'reminder', 'draft_notice', 'answer', 'auto_resolved', 'agent_new_ticket', 'agent_customer_reply'));
-- The message an answer carries, and the agent a staff notice is for.
ALTER TABLE outbox ADD COLUMN message_ref bigint REFERENCES messages (id) ON DELETE CASCADE;
ALTER TABLE outbox ADD COLUMN agent_id bigint REFERENCES agents (id) ON DELETE CASCADE;

CREATE TABLE canned_responses (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- NULL: for every department.
    department_id  bigint REFERENCES departments (id) ON DELETE CASCADE,
    title          text NOT NULL CHECK (title <> ''),
    body           text NOT NULL CHECK (body <> ''),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (department_id, title)
);

-- What admins change, from the staff page or the command line.
CREATE TABLE audit_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    -- "agent:<id> <email>" or "cli:<user>".
    actor   text NOT NULL,
    action  text NOT NULL,
    target  text NOT NULL DEFAULT '',
    detail  text NOT NULL DEFAULT ''
);

-- Raw sources are pruned past the retention period; the log row stays.
ALTER TABLE inbound ALTER COLUMN raw_sha256 DROP NOT NULL;
ALTER TABLE inbound ADD COLUMN raw_pruned_at timestamptz;

-- Each scheduled job's last run, whichever instance ran it.
CREATE TABLE job_runs (
    job         text PRIMARY KEY,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    items       bigint NOT NULL DEFAULT 0,
    error       text NOT NULL DEFAULT '',
    instance    text NOT NULL DEFAULT ''
);
