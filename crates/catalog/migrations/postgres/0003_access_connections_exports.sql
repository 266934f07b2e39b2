-- Principals and their roles per environment; connections, their sealed secrets, and
-- exports. Conventions as in 0001.
--
-- Tables that name a principal keep the name as given and compare `lower(principal)`;
-- they hold no foreign key to `principals` (whose key is `lower(name)`, an expression),
-- so the catalog removes what names a principal when it removes the principal.

CREATE TABLE principals (
    name        text COLLATE "C" NOT NULL,
    kind        text COLLATE "C" NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE UNIQUE INDEX principals_name ON principals (lower(name));

CREATE TABLE role_assignments (
    environment_id text COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    principal      text COLLATE "C" NOT NULL,
    role           text COLLATE "C" NOT NULL,
    assigned_by    text COLLATE "C" NOT NULL,
    assigned_at    timestamptz NOT NULL
);

CREATE UNIQUE INDEX role_assignments_key ON role_assignments (environment_id, lower(principal));
CREATE INDEX role_assignments_by_principal ON role_assignments (lower(principal));

CREATE TABLE connections (
    id             text COLLATE "C" NOT NULL PRIMARY KEY,
    environment_id text COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    name           text COLLATE "C" NOT NULL,
    kind           text COLLATE "C" NOT NULL,
    -- JSON object of settings; never a secret
    settings_json  jsonb NOT NULL,
    sharing        text COLLATE "C" NOT NULL,
    created_by     text COLLATE "C" NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE UNIQUE INDEX connections_name ON connections (environment_id, lower(name));

-- Secrets sealed by the vault (AES-256-GCM under a master key that is never stored here).
CREATE TABLE connection_secrets (
    connection_id text COLLATE "C" NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    name          text COLLATE "C" NOT NULL,
    sealed        bytea NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (connection_id, name)
);

CREATE TABLE exports (
    id             text COLLATE "C" NOT NULL PRIMARY KEY,
    environment_id text COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    name           text COLLATE "C" NOT NULL,
    -- no cascade: a connection that exports use cannot be deleted
    connection_id  text COLLATE "C" NOT NULL REFERENCES connections (id),
    tables_json    jsonb NOT NULL,
    settings_json  jsonb NOT NULL,
    schedule       text COLLATE "C" NOT NULL,
    created_by     text COLLATE "C" NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE UNIQUE INDEX exports_name ON exports (environment_id, lower(name));
CREATE INDEX exports_by_connection ON exports (connection_id);
