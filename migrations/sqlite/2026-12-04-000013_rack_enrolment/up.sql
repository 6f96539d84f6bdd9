-- Rack enrolment (#15). A rack is pending until an admin approves it, approved, or revoked for
-- good (its token gone; it gets no snapshot, jobs or secrets). Racks registered before this
-- migration were already trusted: approved.
ALTER TABLE racks ADD COLUMN approval TEXT NOT NULL DEFAULT 'approved';

-- The networks whose BMCs an admin said the rack drives (JSON list of IPv4 CIDRs): power jobs,
-- which carry BMC secrets, go only there. Racks from before drove every BMC: they keep doing so
-- until an admin narrows it.
ALTER TABLE racks ADD COLUMN power_networks TEXT NOT NULL DEFAULT '[]';
UPDATE racks SET power_networks = '["0.0.0.0/0"]';

-- One-time enrolment tokens (`kiln admin rack-token`): the secret's hash, until when it may be
-- used, whether the rack it enrols is approved at once, and which rack used it.
CREATE TABLE rack_enrolment_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    secret_hash TEXT NOT NULL,
    auto_approve BOOLEAN NOT NULL,
    -- The power networks the enrolled rack gets (JSON list of CIDRs).
    power_networks TEXT NOT NULL DEFAULT '[]',
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    rack_id TEXT
);
CREATE INDEX rack_enrolment_tokens_expires_at ON rack_enrolment_tokens (expires_at);
