-- DNS: the domains Kiln is authoritative for (one is the default), operators' records, and the
-- domain a machine is named in (NULL: the default).
CREATE TABLE dns_domains (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    ttl INTEGER NOT NULL,
    is_default BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
INSERT INTO dns_domains (id, name, ttl, is_default, created_at, updated_at)
    VALUES ('dom-kiln', 'kiln', 30, TRUE, 0, 0);
CREATE TABLE dns_records (
    id TEXT PRIMARY KEY NOT NULL,
    domain_id TEXT NOT NULL REFERENCES dns_domains(id),
    name TEXT NOT NULL,
    rtype TEXT NOT NULL,
    data TEXT NOT NULL,
    ttl INTEGER NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX dns_records_name ON dns_records (name);
ALTER TABLE machines ADD COLUMN domain_id TEXT REFERENCES dns_domains(id);
-- The rack's HTTP proxy in the deployed system's apt settings (`deploy --no-proxy` turns it off).
ALTER TABLE deployments ADD COLUMN proxy BOOLEAN NOT NULL DEFAULT TRUE;
