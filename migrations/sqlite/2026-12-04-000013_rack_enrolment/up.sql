-- Rack enrolment (#15). A rack is pending until an admin approves it, approved, or revoked for
-- good (its token gone; it gets no snapshot, jobs or secrets). Racks registered before this
-- migration were already trusted: approved.
ALTER TABLE racks ADD COLUMN approval TEXT NOT NULL DEFAULT 'approved';

-- One-time enrolment tokens (`kiln admin rack-token`): the secret's hash, until when it may be
-- used, whether the rack it enrols is approved at once, and which rack used it.
CREATE TABLE rack_enrolment_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    secret_hash TEXT NOT NULL,
    auto_approve BOOLEAN NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    rack_id TEXT
);
CREATE INDEX rack_enrolment_tokens_expires_at ON rack_enrolment_tokens (expires_at);
