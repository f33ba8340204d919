-- Mailboxes that log in with OAuth2 (Microsoft 365, Gmail, any provider
-- with a token endpoint) instead of a password; and the mail that tells the
-- admins when a mailbox's authorization fails.

ALTER TABLE mailboxes ADD COLUMN auth_kind text NOT NULL DEFAULT 'password' CHECK (auth_kind IN ('password', 'oauth2'));
-- A mailbox logging in with OAuth2 has no password.
ALTER TABLE mailboxes DROP CONSTRAINT mailboxes_password_ref_check;
ALTER TABLE mailboxes ADD CONSTRAINT mailboxes_password_ref_check CHECK (CASE auth_kind
    WHEN 'password' THEN password_ref ~ '^(env|file):.'
    ELSE password_ref = '' END);

-- Who issues the tokens: a preset (microsoft: tenant-aware; google) or a
-- generic provider with its own token and device-authorization URLs.
ALTER TABLE mailboxes ADD COLUMN oauth_provider text NOT NULL DEFAULT ''
    CHECK (oauth_provider IN ('', 'microsoft', 'google', 'generic'));
ALTER TABLE mailboxes ADD COLUMN oauth_tenant text NOT NULL DEFAULT '';
ALTER TABLE mailboxes ADD COLUMN oauth_client_id text NOT NULL DEFAULT '';
-- Where the client secret is, like password_ref; '' for a public client.
ALTER TABLE mailboxes ADD COLUMN oauth_client_secret_ref text NOT NULL DEFAULT ''
    CHECK (oauth_client_secret_ref = '' OR oauth_client_secret_ref ~ '^(env|file):.');
-- Tokens come from the client credentials grant (app-only access) rather
-- than from a person authorizing the mailbox.
ALTER TABLE mailboxes ADD COLUMN oauth_client_credentials boolean NOT NULL DEFAULT false;
ALTER TABLE mailboxes ADD COLUMN oauth_token_url text NOT NULL DEFAULT '';
ALTER TABLE mailboxes ADD COLUMN oauth_device_url text NOT NULL DEFAULT '';
-- Where a browser signs in, for providers authorized that way (Google's
-- device flow does not grant access to Gmail).
ALTER TABLE mailboxes ADD COLUMN oauth_auth_url text NOT NULL DEFAULT '';
-- Empty: the provider's default scopes.
ALTER TABLE mailboxes ADD COLUMN oauth_scopes text[] NOT NULL DEFAULT '{}';
ALTER TABLE mailboxes ADD CONSTRAINT mailboxes_oauth_check CHECK (auth_kind = 'password' OR (
    oauth_provider <> '' AND oauth_client_id <> ''
    AND (oauth_provider <> 'generic' OR oauth_token_url ~ '^https?://')));

-- The tokens, sealed with AES-256-GCM under HELPDESK_SECRET_KEY (nonce
-- first); NULL until the mailbox is authorized. Client credentials have no
-- refresh token.
ALTER TABLE mailboxes ADD COLUMN oauth_refresh_token bytea;
ALTER TABLE mailboxes ADD COLUMN oauth_access_token bytea;
ALTER TABLE mailboxes ADD COLUMN oauth_expires_at timestamptz;
-- When the tokens were last obtained, by authorization or refresh.
ALTER TABLE mailboxes ADD COLUMN oauth_refreshed_at timestamptz;
-- Why the last refresh failed ('' once one succeeds), and when.
ALTER TABLE mailboxes ADD COLUMN oauth_error text NOT NULL DEFAULT '';
ALTER TABLE mailboxes ADD COLUMN oauth_error_at timestamptz;
-- When the admins were mailed about the failure: set once per failure, so
-- that they get one mail, cleared when tokens are obtained again.
ALTER TABLE mailboxes ADD COLUMN oauth_alerted_at timestamptz;

-- A mail to an admin about a mailbox: it concerns no ticket. Its text is
-- kept with it, as it was when the failure happened.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('ack', 'reminder', 'draft_notice', 'answer', 'auto_resolved', 'agent_new_ticket',
                    'agent_customer_reply', 'admin_alert'));
ALTER TABLE outbox ALTER COLUMN ticket_id DROP NOT NULL;
ALTER TABLE outbox ADD COLUMN mailbox_id bigint REFERENCES mailboxes (id) ON DELETE CASCADE;
ALTER TABLE outbox ADD COLUMN detail text NOT NULL DEFAULT '';
ALTER TABLE outbox ADD CONSTRAINT outbox_subject_check CHECK (CASE kind
    WHEN 'admin_alert' THEN ticket_id IS NULL AND mailbox_id IS NOT NULL AND agent_id IS NOT NULL
    ELSE ticket_id IS NOT NULL END);
CREATE INDEX outbox_mailbox ON outbox (mailbox_id) WHERE mailbox_id IS NOT NULL;
-- Alerts are claimed on their own, ahead of other mail: this finds the due
-- ones without walking a backlog of acknowledgements.
CREATE INDEX outbox_alerts_due ON outbox (next_attempt) WHERE state = 'pending' AND kind = 'admin_alert';
