-- The sharing of an environment's outputs: its Reader and Contributor groups (group
-- principals) and what each is bound to on the environment's storage (a Unix group id,
-- an S3 identity, an Entra object id). The access rules themselves live on the storage.

CREATE TABLE sharing (
    environment_id      TEXT NOT NULL PRIMARY KEY REFERENCES environments (id) ON DELETE CASCADE,
    reader_group        TEXT NOT NULL,
    contributor_group   TEXT NOT NULL,
    storage_reader      TEXT NOT NULL,
    storage_contributor TEXT NOT NULL,
    enabled_by          TEXT NOT NULL,
    enabled_at          TEXT NOT NULL
) STRICT;
