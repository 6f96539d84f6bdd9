-- KVM pods: libvirt hosts, what racks last discovered on them (JSON), and the jobs racks run on
-- them (discover, compose, decompose). A composed machine names its pod.
CREATE TABLE pods (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    pod_type TEXT NOT NULL,
    power_address TEXT NOT NULL,
    power_secrets TEXT NOT NULL,
    cpu_over_commit_ratio DOUBLE PRECISION NOT NULL,
    memory_over_commit_ratio DOUBLE PRECISION NOT NULL,
    default_storage_pool TEXT,
    default_network TEXT,
    tags TEXT NOT NULL,
    zone TEXT NOT NULL,
    pool TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT,
    discovered TEXT,
    rack_id TEXT,
    refreshed_at BIGINT,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE pod_jobs (
    id TEXT PRIMARY KEY NOT NULL,
    pod_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    system_id TEXT,
    spec TEXT,
    status TEXT NOT NULL,
    rack_id TEXT,
    taken_by TEXT,
    message TEXT,
    requested_by TEXT,
    created_at BIGINT NOT NULL,
    taken_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX pod_jobs_status ON pod_jobs (status, created_at);
ALTER TABLE machines ADD COLUMN pod_id TEXT;
