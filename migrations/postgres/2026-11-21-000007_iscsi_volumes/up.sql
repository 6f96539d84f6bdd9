-- Root on iSCSI: one volume per iSCSI deployment, served by one rack; and what each rack says
-- it can serve (its portal, target driver, store).
CREATE TABLE volumes (
    -- The target IQN is iqn.2026-12.org.kiln:vol-<id>; the CHAP user kiln-<id>.
    id TEXT PRIMARY KEY NOT NULL,
    -- Not a foreign key: a kept volume outlives its machine.
    system_id TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    rack_id TEXT NOT NULL,
    -- The OS image's resource and root file (the golden volume is made from it).
    resource_id TEXT NOT NULL,
    initiator_iqn TEXT NOT NULL,
    -- CHAP secret and the deployment's seed credential, sealed like power secrets.
    secrets TEXT NOT NULL,
    -- Asked size (0: the golden volume's).
    requested_bytes BIGINT NOT NULL,
    -- creating, ready, failed, removing, removed, kept.
    state TEXT NOT NULL,
    -- With removing: keep the file on the rack.
    keep_file BOOLEAN NOT NULL,
    portal TEXT,
    clone_method TEXT,
    size_bytes BIGINT,
    used_bytes BIGINT,
    message TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX volumes_machine ON volumes(system_id, created_at);
CREATE INDEX volumes_rack ON volumes(rack_id, state);
ALTER TABLE racks ADD COLUMN iscsi TEXT;
