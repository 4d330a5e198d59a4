-- Lineage in fewer B-trees (issue 5), PostgreSQL: the index on record_index (record_key) is
-- used by no query. The tables keep their shape (PostgreSQL has no WITHOUT ROWID: its heap
-- plus primary-key index is what SQLite's 0005 builds in one B-tree).
DROP INDEX IF EXISTS record_index_key
