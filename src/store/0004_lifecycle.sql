CREATE TABLE IF NOT EXISTS list_events (
    blacklist_id TEXT NOT NULL,
    record_version TEXT NOT NULL,
    digest TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event TEXT NOT NULL,
    record_key TEXT NOT NULL,
    accepted_at TEXT NOT NULL,
    PRIMARY KEY (blacklist_id, record_version, digest)
);
CREATE INDEX IF NOT EXISTS list_events_seq ON list_events (seq);
CREATE TABLE IF NOT EXISTS retractions (
    target_record_key TEXT NOT NULL,
    retract_version TEXT NOT NULL,
    basis_record_key TEXT NOT NULL,
    cause TEXT NOT NULL,
    due TEXT NOT NULL,
    holders TEXT NOT NULL,
    planned_at TEXT NOT NULL,
    PRIMARY KEY (target_record_key, retract_version)
);
CREATE TABLE IF NOT EXISTS publicity (
    record_key TEXT NOT NULL,
    record_version TEXT NOT NULL,
    catalog_item TEXT NOT NULL,
    source_org TEXT NOT NULL,
    decision TEXT NOT NULL,
    publish BIGINT NOT NULL,
    tier TEXT NOT NULL,
    rule_version TEXT NOT NULL,
    min_end TEXT NOT NULL,
    max_end TEXT NOT NULL,
    stopped_at TEXT NOT NULL,
    PRIMARY KEY (record_key, record_version)
);
CREATE INDEX IF NOT EXISTS publicity_max_end ON publicity (publish, stopped_at, max_end);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at TEXT NOT NULL
)
