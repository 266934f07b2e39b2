-- Secrets of environments (storage keys, tokens) sealed by the vault, referred to from
-- the storage configuration as `{ vault = "<name>" }`. Timestamps as in 0001.

CREATE TABLE environment_secrets (
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    sealed         BLOB NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (environment_id, name)
) STRICT;
