-- 3: one PowerOffice request budget per subscription key, shared by every process using this
-- database (adapters.postgres_budget). limiter_id is PowerOfficeCredentials.limiter_id(), a hash:
-- the key itself is never stored. next_slot is the earliest free request slot, in seconds since
-- the epoch on the database's clock, so every worker books against one clock. A slot is a time,
-- not a held token: a worker that dies after booking leaves a slot that simply passes.
CREATE TABLE poweroffice_budget (
    limiter_id text PRIMARY KEY,
    next_slot double precision NOT NULL
);
