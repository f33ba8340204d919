-- Mail that answers what the helpdesk sent: replies held as drafts for the
-- ticket's owner to confirm, automatic answers recorded against the ticket,
-- bounces matched to the mail they return; and what was found about who
-- really sent each mail.

ALTER TABLE inbound DROP CONSTRAINT inbound_disposition_check;
ALTER TABLE inbound ADD CONSTRAINT inbound_disposition_check
    CHECK (disposition IN ('ticket', 'duplicate', 'quarantined', 'draft', 'auto_reply', 'bounce'));
-- SPF, DKIM and DMARC verdicts: evaluated by the SMTP listener, or read from
-- a trusted Authentication-Results header for mail from a mailbox.
ALTER TABLE inbound ADD COLUMN auth_spf text NOT NULL DEFAULT '';
ALTER TABLE inbound ADD COLUMN auth_dkim text NOT NULL DEFAULT '';
ALTER TABLE inbound ADD COLUMN auth_dmarc text NOT NULL DEFAULT '';
ALTER TABLE inbound ADD COLUMN auth_detail text NOT NULL DEFAULT '';
-- Quarantine is listed by disposition, newest first.
CREATE INDEX inbound_disposition ON inbound (disposition, id DESC) WHERE disposition NOT IN ('ticket', 'duplicate');

-- A reply to a notification, kept until the ticket's owner posts it (it then
-- becomes a message like a web reply), discards it, or lets it expire.
CREATE TABLE drafts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id     bigint NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    inbound_id    bigint NOT NULL REFERENCES inbound (id),
    from_name     text NOT NULL DEFAULT '',
    from_address  text NOT NULL DEFAULT '',
    subject       text NOT NULL DEFAULT '',
    -- The new text, quoted history removed; full_text is all of it.
    body_text     text NOT NULL,
    full_text     text NOT NULL,
    state         text NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'posted', 'discarded', 'expired')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    decided_at    timestamptz,
    -- The message it became, once posted.
    message_id    bigint REFERENCES messages (id) ON DELETE SET NULL
);
CREATE INDEX drafts_ticket ON drafts (ticket_id, id);
CREATE INDEX drafts_held ON drafts (expires_at) WHERE state = 'held';
-- Replies are limited per sender: this finds a sender's recent ones.
CREATE INDEX drafts_sender ON drafts (lower(from_address), created_at);

CREATE TABLE draft_attachments (
    draft_id      bigint NOT NULL REFERENCES drafts (id) ON DELETE CASCADE,
    position      integer NOT NULL CHECK (position >= 0),
    filename      text NOT NULL,
    content_type  text NOT NULL,
    content_id    text NOT NULL DEFAULT '',
    inline        boolean NOT NULL DEFAULT false,
    size          bigint NOT NULL CHECK (size >= 0),
    sha256        bytea NOT NULL REFERENCES blobs (sha256),
    PRIMARY KEY (draft_id, position)
);

-- A draft's link confirms that draft (and shows its ticket) until the draft
-- expires.
ALTER TABLE tokens DROP CONSTRAINT tokens_scope_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_scope_check CHECK (scope IN ('ticket', 'draft'));
ALTER TABLE tokens ADD COLUMN draft_id bigint REFERENCES drafts (id) ON DELETE CASCADE;
ALTER TABLE tokens ADD CONSTRAINT tokens_draft_scope CHECK ((scope = 'draft') = (draft_id IS NOT NULL));

-- The notice telling a ticket's owner a reply waits for them.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('ack', 'reminder', 'draft_notice'));
ALTER TABLE outbox ADD COLUMN draft_id bigint REFERENCES drafts (id) ON DELETE CASCADE;
-- Bounces name the mail they return by its Message-ID.
ALTER TABLE outbox ADD COLUMN bounced_at timestamptz;
ALTER TABLE outbox ADD COLUMN bounce_status text NOT NULL DEFAULT '';
-- Acknowledgements are limited per address: this finds the recent ones.
CREATE INDEX outbox_acks ON outbox (lower(recipient), created_at) WHERE kind = 'ack';
CREATE INDEX outbox_draft_notices ON outbox (ticket_id, created_at) WHERE kind = 'draft_notice';

-- Addresses mail to which has bounced, for the staff to see.
CREATE TABLE address_bounces (
    address          text PRIMARY KEY CHECK (address = lower(address)),
    first_at         timestamptz NOT NULL DEFAULT now(),
    last_at          timestamptz NOT NULL DEFAULT now(),
    bounces          integer NOT NULL DEFAULT 1,
    last_status      text NOT NULL DEFAULT '',
    last_diagnostic  text NOT NULL DEFAULT '',
    last_inbound_id  bigint REFERENCES inbound (id) ON DELETE SET NULL
);

-- New tickets are limited per sender: this finds a sender's recent ones.
DROP INDEX tickets_customer_email;
CREATE INDEX tickets_customer_created ON tickets (lower(customer_email), created_at);
