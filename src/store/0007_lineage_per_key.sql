-- Lineage index rows per record key instead of per inbound message (issue 5: the store's cost
-- on the ingest path). Every new version of a record (a correction, a platform re-sending it)
-- used to add a row per identifier value although the record key already had it: the index
-- now holds one row per (identifier, record key, fields), which is all a lookup needs
-- (identifier → record keys → their history). `routed_copies` is keyed by the copy itself
-- (record key, idempotency key: destination + record key + version), kept from the first
-- document that routed it. Record versions keep one row per inbound message: that is the
-- history. One text for both backends: PostgreSQL runs it without `WITHOUT ROWID`
-- (`store::for_postgres`).
CREATE TABLE record_index_0007 (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    record_key TEXT NOT NULL,
    field TEXT NOT NULL,
    PRIMARY KEY (kind, value, record_key, field)
) WITHOUT ROWID;
INSERT INTO record_index_0007 (kind, value, record_key, field)
    SELECT kind, value, record_key, field FROM record_index WHERE true ON CONFLICT DO NOTHING;
DROP TABLE record_index;
ALTER TABLE record_index_0007 RENAME TO record_index;
-- Retention removes a key's index rows once its last version is gone.
CREATE INDEX IF NOT EXISTS record_index_key ON record_index (record_key);
CREATE TABLE routed_copies_0007 (
    record_key TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    record_index BIGINT NOT NULL,
    destination TEXT NOT NULL,
    record_version TEXT NOT NULL,
    routed_at TEXT NOT NULL,
    PRIMARY KEY (record_key, idempotency_key)
) WITHOUT ROWID;
INSERT INTO routed_copies_0007 (record_key, idempotency_key, message_id, record_index, destination, record_version, routed_at)
    SELECT record_key, idempotency_key, message_id, record_index, destination, record_version, routed_at
    FROM routed_copies WHERE true ORDER BY routed_at ON CONFLICT DO NOTHING;
DROP TABLE routed_copies;
ALTER TABLE routed_copies_0007 RENAME TO routed_copies
