-- Enlistment and commissioning: the MAC of machine-less events (attached when the machine is
-- enlisted), per-boot machine credentials, operator commissioning scripts, script results and the
-- hardware inventory commissioning found.
ALTER TABLE events ADD COLUMN mac TEXT;
CREATE INDEX events_mac ON events(mac);

ALTER TABLE machines ADD COLUMN hardware TEXT;

CREATE TABLE boot_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    system_id TEXT NOT NULL REFERENCES machines(system_id) ON DELETE CASCADE,
    boot_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX boot_tokens_machine ON boot_tokens(system_id);

CREATE TABLE scripts (
    name TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    content TEXT NOT NULL,
    timeout_secs INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE script_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    system_id TEXT NOT NULL REFERENCES machines(system_id) ON DELETE CASCADE,
    boot_id TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    exit_code INTEGER,
    output TEXT NOT NULL DEFAULT '',
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    UNIQUE (system_id, boot_id, name)
);
CREATE INDEX script_results_machine ON script_results(system_id, boot_id);
