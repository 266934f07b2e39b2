-- Reporting connections: a reporting workspace linked to an environment's instance folder.
-- `body` is the connection as JSON (storage with secret references only, status, members).

CREATE TABLE reporting_connections (
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    name           TEXT NOT NULL COLLATE NOCASE,
    body           TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (environment_id, name)
) STRICT;
