-- The sharing of an environment's outputs: its Reader and Contributor groups (group
-- principals) and what each is bound to on the environment's storage (a Unix group id,
-- an S3 identity, an Entra object id). The access rules themselves live on the storage.

CREATE TABLE sharing (
    environment_id      text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES environments (id) ON DELETE CASCADE,
    reader_group        text NOT NULL,
    contributor_group   text NOT NULL,
    storage_reader      text NOT NULL,
    storage_contributor text NOT NULL,
    enabled_by          text NOT NULL,
    enabled_at          timestamptz NOT NULL
);
