-- 3: the mirror view finds records by origin key too (issue 13). The key columns are filled
-- from the dataflow's roles when a store opens for writing (PostgresStateStore._rekey).
ALTER TABLE records ADD COLUMN origin_key text;
CREATE INDEX records_by_origin ON records (tenant_id, system, kind, origin_key)
    WHERE origin_key IS NOT NULL;
