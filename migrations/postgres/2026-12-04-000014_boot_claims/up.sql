-- One-time boot claim codes (#15). The kernel command line (which the console shows) carries a
-- claim code, not the boot's credential: the machine's initramfs exchanges it once, through the
-- rack that leased its address, for the real per-boot token. One outstanding claim per machine;
-- the token it becomes lives `token_ttl_ms` from the exchange.
CREATE TABLE boot_claims (
    claim_hash TEXT PRIMARY KEY NOT NULL,
    system_id TEXT NOT NULL REFERENCES machines(system_id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    token_ttl_ms BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX boot_claims_machine ON boot_claims (system_id);
CREATE INDEX boot_claims_expires_at ON boot_claims (expires_at);
