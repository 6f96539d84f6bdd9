-- Kiln initial schema (SQLite). Keep in step with ../../postgres/ (same names, same columns).
-- Times are BIGINT milliseconds since the Unix epoch, UTC.
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    is_session BOOLEAN NOT NULL DEFAULT 0,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

CREATE TABLE subnets (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    cidr TEXT NOT NULL UNIQUE,
    gateway TEXT,
    dns_servers TEXT NOT NULL DEFAULT '[]',
    domain TEXT,
    dynamic_ranges TEXT NOT NULL DEFAULT '[]',
    reserved_ranges TEXT NOT NULL DEFAULT '[]',
    static_routes TEXT NOT NULL DEFAULT '[]',
    managed BOOLEAN NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE machines (
    system_id TEXT PRIMARY KEY NOT NULL,
    hostname TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    previous_status TEXT,
    status_deadline BIGINT,
    architecture TEXT NOT NULL,
    boot_mac TEXT UNIQUE,
    power_type TEXT NOT NULL,
    power_parameters TEXT NOT NULL DEFAULT '{}',
    owner_id TEXT REFERENCES users(id) ON DELETE SET NULL,
    zone TEXT NOT NULL DEFAULT 'default',
    pool TEXT NOT NULL DEFAULT 'default',
    description TEXT NOT NULL DEFAULT '',
    cpu_count INTEGER NOT NULL DEFAULT 0,
    memory_mib BIGINT NOT NULL DEFAULT 0,
    storage_bytes BIGINT NOT NULL DEFAULT 0,
    version BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX machines_status ON machines(status);
CREATE INDEX machines_owner ON machines(owner_id);
CREATE INDEX machines_deadline ON machines(status_deadline);

CREATE TABLE machine_tags (
    system_id TEXT NOT NULL REFERENCES machines(system_id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (system_id, tag)
);
CREATE INDEX machine_tags_tag ON machine_tags(tag);

CREATE TABLE interfaces (
    id TEXT PRIMARY KEY NOT NULL,
    system_id TEXT NOT NULL REFERENCES machines(system_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    mac TEXT NOT NULL UNIQUE,
    subnet_id TEXT REFERENCES subnets(id) ON DELETE SET NULL,
    ip TEXT,
    UNIQUE (system_id, name)
);
CREATE INDEX interfaces_machine ON interfaces(system_id);

CREATE TABLE boot_resources (
    id TEXT PRIMARY KEY NOT NULL,
    os TEXT NOT NULL,
    release TEXT NOT NULL,
    arch TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (os, release, arch, kind)
);

CREATE TABLE boot_resource_files (
    id TEXT PRIMARY KEY NOT NULL,
    resource_id TEXT NOT NULL REFERENCES boot_resources(id) ON DELETE CASCADE,
    filename TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (resource_id, filename)
);
CREATE INDEX boot_resource_files_sha ON boot_resource_files(sha256);

CREATE TABLE racks (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    last_seen BIGINT,
    version TEXT,
    interfaces TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL
);

CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    system_id TEXT,
    created_at BIGINT NOT NULL,
    level TEXT NOT NULL,
    event_type TEXT NOT NULL,
    description TEXT NOT NULL,
    username TEXT
);
CREATE INDEX events_machine ON events(system_id, id);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at BIGINT NOT NULL,
    username TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
