-- 5: the mirror view finds records by the id a reference names too, to find who refers to a
-- record whose link ends. Filled when a store opens for writing (PostgresStateStore._rekey).
ALTER TABLE records ADD COLUMN reference_key text;
CREATE INDEX records_by_reference ON records (tenant_id, system, kind, reference_key)
    WHERE reference_key IS NOT NULL;
