-- Lineage in fewer B-trees (issue 5: the lineage's share of ingest). SQLite only, PostgreSQL has
-- its own 0005.
--
-- record_index: one WITHOUT ROWID B-tree keyed for the only lookup (kind, value), with the
-- record key next so results come out in the order they are listed, instead of a rowid table,
-- its primary-key index and an index on record_key that no query used.
-- routed_copies: one WITHOUT ROWID B-tree keyed by record_key (history, holders), instead of
-- a rowid table, its primary-key index and the record_key index. The idempotency key is
-- derived from the record key, so (record_key, idempotency_key, message_id) is as unique as
-- (idempotency_key, message_id) was.
DROP INDEX IF EXISTS record_index_key;
CREATE TABLE record_index_0005 (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    record_key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    record_index BIGINT NOT NULL,
    field TEXT NOT NULL,
    PRIMARY KEY (kind, value, record_key, message_id, record_index, field)
) WITHOUT ROWID;
INSERT INTO record_index_0005 (kind, value, record_key, message_id, record_index, field)
    SELECT kind, value, record_key, message_id, record_index, field FROM record_index;
DROP TABLE record_index;
ALTER TABLE record_index_0005 RENAME TO record_index;
CREATE TABLE routed_copies_0005 (
    record_key TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    record_index BIGINT NOT NULL,
    destination TEXT NOT NULL,
    record_version TEXT NOT NULL,
    routed_at TEXT NOT NULL,
    PRIMARY KEY (record_key, idempotency_key, message_id)
) WITHOUT ROWID;
INSERT INTO routed_copies_0005 (record_key, idempotency_key, message_id, record_index, destination, record_version, routed_at)
    SELECT record_key, idempotency_key, message_id, record_index, destination, record_version, routed_at FROM routed_copies;
DROP TABLE routed_copies;
ALTER TABLE routed_copies_0005 RENAME TO routed_copies
