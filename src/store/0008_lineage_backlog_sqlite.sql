-- The lineage backlog (issue 5: the store's cost on the ingest path). Ingest appends each
-- accepted record version here, in arrival order, while its copies are being published: one
-- row at the end of one B-tree, where writing it straight into `record_versions`,
-- `record_index` and `routed_copies` touched a page per row in each of their key-ordered
-- indexes (record keys, hashed identifiers and 文书号 arrive in no order). The store's writer
-- moves the backlog into those tables in large batches sorted by key (`lineage::index_backlog`)
-- and readers of the lineage have it moved first, so what they see is unchanged. The index
-- rows are stored ready (identifier values already keyed-hashed), copies as JSON.
CREATE TABLE IF NOT EXISTS lineage_backlog (
    seq INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    record_index BIGINT NOT NULL,
    record_key TEXT NOT NULL,
    record_version TEXT NOT NULL,
    source_adapter TEXT NOT NULL,
    doc_type TEXT NOT NULL,
    catalog_item TEXT NOT NULL,
    catalog_version TEXT NOT NULL,
    operation TEXT NOT NULL,
    status TEXT NOT NULL,
    raw_sha256 TEXT NOT NULL,
    canonical TEXT NOT NULL,
    received_at TEXT NOT NULL,
    index_rows TEXT NOT NULL,
    copies TEXT NOT NULL
)
