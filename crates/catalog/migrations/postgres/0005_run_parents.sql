-- A refresh is a run whose processes are runs of their own: each names its refresh.
ALTER TABLE runs ADD COLUMN parent_id text COLLATE "C";
CREATE INDEX runs_by_parent ON runs (parent_id);
