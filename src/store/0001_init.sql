CREATE TABLE IF NOT EXISTS inbound_messages (
    message_id TEXT PRIMARY KEY,
    adapter TEXT NOT NULL,
    doc_type TEXT NOT NULL,
    status TEXT NOT NULL,
    receipt TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inbound_messages_adapter ON inbound_messages (adapter, received_at);
CREATE TABLE IF NOT EXISTS delivered (
    destination TEXT NOT NULL,
    record_key TEXT NOT NULL,
    record_version TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    delivered_at TEXT NOT NULL,
    response TEXT NOT NULL,
    PRIMARY KEY (destination, record_key)
)
