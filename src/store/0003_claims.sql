CREATE TABLE IF NOT EXISTS delivery_claims (
    destination TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    owner TEXT NOT NULL,
    lease_until_ms BIGINT NOT NULL,
    PRIMARY KEY (destination, idempotency_key)
);
CREATE INDEX IF NOT EXISTS delivery_claims_lease ON delivery_claims (lease_until_ms)
;
CREATE INDEX IF NOT EXISTS record_versions_item_age ON record_versions (catalog_item, received_at);
CREATE INDEX IF NOT EXISTS dead_letters_item_age ON dead_letters (catalog_item, dead_at);
CREATE INDEX IF NOT EXISTS rejected_inputs_age ON rejected_inputs (received_at);
CREATE INDEX IF NOT EXISTS inbound_messages_age ON inbound_messages (received_at)
