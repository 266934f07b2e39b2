-- Reporting connections: a reporting workspace linked to an environment's instance folder.
-- `body` is the connection as JSON (storage with secret references only, status, members).
-- Names are unique per environment without regard to ASCII case.

CREATE TABLE reporting_connections (
    environment_id text COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    name           text COLLATE "C" NOT NULL,
    name_key       text COLLATE "C" NOT NULL,
    body           text NOT NULL,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (environment_id, name_key)
);
