-- The lineage backlog (issue 5: the store's cost on the ingest path). Ingest writes each
-- accepted record version into `record_versions` and appends its index rows and routed copies
-- here, in arrival order: one small row at the end of one B-tree, where writing them straight
-- into `record_index` and `routed_copies` touched a page per row in each of their key-ordered
-- B-trees (record keys, hashed identifiers and 文书号 arrive in no order). The store's writer
-- moves the backlog into those tables in large batches sorted by key (`lineage::index_backlog`)
-- and readers of the lineage have it moved first, so what they see is unchanged. The index
-- rows are stored ready (identifier values already keyed-hashed), copies as JSON. One text
-- for both backends: PostgreSQL numbers the rows with a BIGSERIAL (`store::for_postgres`).
CREATE TABLE IF NOT EXISTS lineage_backlog (
    seq INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    record_index BIGINT NOT NULL,
    record_key TEXT NOT NULL,
    record_version TEXT NOT NULL,
    received_at TEXT NOT NULL,
    index_rows TEXT NOT NULL,
    copies TEXT NOT NULL
)
