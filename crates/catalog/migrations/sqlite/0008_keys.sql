-- Keys of the catalog: random bytes made on first use and shared by every process that
-- uses the catalog (the key that signs the file URLs of the sharing endpoint). Only
-- processes that can read the catalog can read them, as its token digests and sealed
-- secrets.

CREATE TABLE keys (
    name       TEXT NOT NULL PRIMARY KEY,
    key        BLOB NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
