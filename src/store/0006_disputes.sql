CREATE TABLE IF NOT EXISTS disputes (
    objection_id TEXT PRIMARY KEY,
    target_record_key TEXT NOT NULL,
    held_version TEXT NOT NULL,
    state TEXT NOT NULL,
    dispute TEXT NOT NULL,
    holding BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS disputes_target ON disputes (target_record_key, holding);
ALTER TABLE rejected_inputs ADD COLUMN source_org TEXT NOT NULL DEFAULT ''
