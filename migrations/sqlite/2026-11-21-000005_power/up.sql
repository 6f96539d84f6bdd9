-- Power control: secret power parameters move to an encrypted column (the region moves any
-- plain ones at start, see domain::power::seal_plain_secrets), the last power state seen, the
-- per-machine BMC auto-configuration switch, and the jobs racks run.
ALTER TABLE machines ADD COLUMN power_secrets TEXT NOT NULL DEFAULT '';
ALTER TABLE machines ADD COLUMN power_state TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE machines ADD COLUMN power_state_at BIGINT;
ALTER TABLE machines ADD COLUMN skip_bmc_config BOOLEAN NOT NULL DEFAULT 0;

CREATE TABLE power_jobs (
    id TEXT PRIMARY KEY NOT NULL,
    system_id TEXT NOT NULL REFERENCES machines(system_id) ON DELETE CASCADE,
    action TEXT NOT NULL,
    boot_device TEXT,
    -- Why: user, commission, release, abort, poll.
    purpose TEXT NOT NULL,
    status TEXT NOT NULL,
    -- Rack the job must run on (one that reaches the BMC), or NULL for any rack.
    rack_id TEXT,
    -- Rack that took it.
    taken_by TEXT,
    power_state TEXT,
    message TEXT,
    requested_by TEXT,
    created_at BIGINT NOT NULL,
    taken_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX power_jobs_pending ON power_jobs(status, created_at);
CREATE INDEX power_jobs_machine ON power_jobs(system_id, created_at);
