-- A version received again with the same content keeps no second body (issue 5: the store's
-- cost on ingest): its row holds '=' in `canonical` and the body stays in the row of the same
-- record key, version and body digest that has it (`store::lineage::SAME_BODY`), found on
-- `record_versions_key`. Rows written before have no digest and always keep their own body.
ALTER TABLE record_versions ADD COLUMN body_sha256 TEXT NOT NULL DEFAULT ''
