-- The PostgreSQL text of 0007 (see 0007_lineage_per_key_sqlite.sql): the same tables without
-- SQLite's WITHOUT ROWID. The old `routed_copies_key` index goes with its table, and the new
-- primary keys lead with the record key.
CREATE TABLE record_index_0007 (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    record_key TEXT NOT NULL,
    field TEXT NOT NULL,
    PRIMARY KEY (kind, value, record_key, field)
);
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
);
INSERT INTO routed_copies_0007 (record_key, idempotency_key, message_id, record_index, destination, record_version, routed_at)
    SELECT record_key, idempotency_key, message_id, record_index, destination, record_version, routed_at
    FROM routed_copies WHERE true ORDER BY routed_at ON CONFLICT DO NOTHING;
DROP TABLE routed_copies;
ALTER TABLE routed_copies_0007 RENAME TO routed_copies
