-- Consuming organisations attached to shared storage accounts (from the consuming side):
-- one organisation to one storage account at most, which the primary key keeps.

CREATE TABLE attachments (
    organization text COLLATE "C" NOT NULL,
    account      text NOT NULL,
    identifier   text NOT NULL,
    attached_by  text NOT NULL,
    attached_at  timestamptz NOT NULL
);
-- unique without regard to ASCII case, as on SQLite
CREATE UNIQUE INDEX attachments_organization ON attachments (lower(organization));
