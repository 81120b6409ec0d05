-- 2: what a tenant is beyond its name (talksync tenants add), and its schedule.
-- Secrets are never stored: the two per-tenant secrets are references, 'env:NAME' or
-- 'file:/path' (adapters.tenants.SecretRef), resolved where the sync runs. The single-company
-- tenant ('default', made by the state store) has none of these: its settings come from the
-- environment and talksync.toml as without PostgreSQL.
ALTER TABLE tenants
    ADD COLUMN zendesk_url text,
    ADD COLUMN zendesk_email text,
    ADD COLUMN zendesk_token_ref text,
    ADD COLUMN poweroffice_client_key_ref text,
    ADD COLUMN policies text NOT NULL DEFAULT '',
    ADD COLUMN cadence_seconds integer NOT NULL DEFAULT 300 CHECK (cadence_seconds > 0),
    ADD COLUMN paused boolean NOT NULL DEFAULT false,
    ADD COLUMN next_due timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN last_started timestamptz,
    ADD COLUMN last_finished timestamptz,
    ADD COLUMN last_outcome text,
    ADD COLUMN failure_streak integer NOT NULL DEFAULT 0;
CREATE INDEX tenants_due ON tenants (next_due) WHERE NOT paused;
