-- Keys of the catalog: random bytes made on first use and shared by every process that
-- uses the catalog (the key that signs the file URLs of the sharing endpoint). Only
-- processes that can read the catalog can read them, as its token digests and sealed
-- secrets.

CREATE TABLE keys (
    name       text COLLATE "C" NOT NULL PRIMARY KEY,
    key        bytea NOT NULL,
    created_at timestamptz NOT NULL
);
