-- Region-wide settings (the rack secret, ...) and rack credentials.
CREATE TABLE settings (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
ALTER TABLE racks ADD COLUMN token_hash TEXT;
CREATE UNIQUE INDEX racks_token_hash ON racks(token_hash);
