CREATE TABLE IF NOT EXISTS store_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO store_meta (name, value) VALUES ('audit_lock', '') ON CONFLICT (name) DO NOTHING;
CREATE TABLE IF NOT EXISTS record_versions (
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
    PRIMARY KEY (message_id, record_index)
);
CREATE INDEX IF NOT EXISTS record_versions_key ON record_versions (record_key, record_version);
CREATE TABLE IF NOT EXISTS record_index (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    field TEXT NOT NULL,
    message_id TEXT NOT NULL,
    record_index BIGINT NOT NULL,
    record_key TEXT NOT NULL,
    PRIMARY KEY (kind, value, message_id, record_index, field)
);
CREATE INDEX IF NOT EXISTS record_index_key ON record_index (record_key);
CREATE TABLE IF NOT EXISTS routed_copies (
    idempotency_key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    record_index BIGINT NOT NULL,
    destination TEXT NOT NULL,
    record_key TEXT NOT NULL,
    record_version TEXT NOT NULL,
    routed_at TEXT NOT NULL,
    PRIMARY KEY (idempotency_key, message_id)
);
CREATE INDEX IF NOT EXISTS routed_copies_key ON routed_copies (record_key, record_version);
CREATE TABLE IF NOT EXISTS delivery_attempts (
    attempt_id TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL,
    destination TEXT NOT NULL,
    record_key TEXT NOT NULL,
    record_version TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL,
    response TEXT NOT NULL,
    replay_of TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS delivery_attempts_key ON delivery_attempts (record_key, at);
CREATE INDEX IF NOT EXISTS delivery_attempts_copy ON delivery_attempts (idempotency_key, at);
CREATE TABLE IF NOT EXISTS dead_letters (
    dead_id TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL,
    destination TEXT NOT NULL,
    record_key TEXT NOT NULL,
    record_version TEXT NOT NULL,
    catalog_item TEXT NOT NULL,
    operation TEXT NOT NULL,
    source_adapter TEXT NOT NULL,
    source_message_id TEXT NOT NULL,
    content_type TEXT NOT NULL,
    payload BYTEA NOT NULL,
    reason_class TEXT NOT NULL,
    reason TEXT NOT NULL,
    response TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    history TEXT NOT NULL,
    replay_of TEXT NOT NULL,
    dead_at TEXT NOT NULL,
    replay_count BIGINT NOT NULL,
    replayed_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_destination ON dead_letters (destination, dead_at);
CREATE INDEX IF NOT EXISTS dead_letters_key ON dead_letters (record_key);
CREATE INDEX IF NOT EXISTS dead_letters_copy ON dead_letters (idempotency_key);
CREATE TABLE IF NOT EXISTS dlq_replays (
    replay_id TEXT PRIMARY KEY,
    replay_of TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    destination TEXT NOT NULL,
    actor TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dlq_replays_of ON dlq_replays (replay_of);
CREATE TABLE IF NOT EXISTS audit_log (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS destination_state (
    destination TEXT PRIMARY KEY,
    paused BIGINT NOT NULL,
    reason TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at TEXT NOT NULL
)
;
CREATE TABLE IF NOT EXISTS rejected_inputs (
    message_id TEXT PRIMARY KEY,
    adapter TEXT NOT NULL,
    doc_type TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body BYTEA NOT NULL,
    receipt TEXT NOT NULL,
    received_at TEXT NOT NULL,
    reingest_count BIGINT NOT NULL,
    reingested_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rejected_inputs_adapter ON rejected_inputs (adapter, received_at)
