-- Consuming organisations attached to shared storage accounts (from the consuming side):
-- one organisation to one storage account at most, which the primary key keeps.

CREATE TABLE attachments (
    organization TEXT NOT NULL COLLATE NOCASE PRIMARY KEY,
    account      TEXT NOT NULL,
    identifier   TEXT NOT NULL,
    attached_by  TEXT NOT NULL,
    attached_at  TEXT NOT NULL
) STRICT;
