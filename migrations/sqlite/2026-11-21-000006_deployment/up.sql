-- Deployment: users' SSH public keys, one row per deployment (what to install and how far it got),
-- and the erase a release asked for.
CREATE TABLE ssh_keys (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_type TEXT NOT NULL,
    -- The whole public key line, normalised: "type base64 [comment]".
    key TEXT NOT NULL,
    comment TEXT NOT NULL,
    -- SHA256:… as ssh-keygen -l prints it.
    fingerprint TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (user_id, fingerprint)
);

CREATE TABLE deployments (
    id TEXT PRIMARY KEY NOT NULL,
    system_id TEXT NOT NULL REFERENCES machines(system_id) ON DELETE CASCADE,
    -- cloud-init's instance-id: new for every deployment.
    instance_id TEXT NOT NULL UNIQUE,
    os TEXT NOT NULL,
    release TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    -- disk or memory.
    target TEXT NOT NULL,
    -- flat or lvm.
    storage_layout TEXT NOT NULL,
    -- The disk's name at commissioning (vda, sda, nvme0n1) and its serial.
    boot_disk TEXT NOT NULL,
    boot_disk_serial TEXT NOT NULL,
    -- user-data, sealed like power secrets ("" when none).
    user_data TEXT NOT NULL,
    -- The owner's SSH keys at deploy time (JSON list of key lines).
    ssh_keys TEXT NOT NULL,
    -- running, installed, deployed, failed, released.
    state TEXT NOT NULL,
    esp_uuid TEXT,
    root_uuid TEXT,
    installer_output TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    installed_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX deployments_machine ON deployments(system_id, created_at);

CREATE TABLE erasures (
    system_id TEXT PRIMARY KEY NOT NULL REFERENCES machines(system_id) ON DELETE CASCADE,
    -- quick or secure.
    mode TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    output TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
