-- Racks long-poll a fingerprint of what their snapshot holds. A row's clock time cannot say it
-- changed: a transaction that read the clock first can commit last, under an already newer maximum,
-- and the rack never sees it. Instead every insert of a row racks serve, and every update of a
-- column they serve, gives the row the next number of one counter (rev), so each table's
-- (count, sum of rev) moves on with every committed change, in whatever order they commit.
-- Updates racks do not serve (power state, tags, hardware) leave rev alone: racks do not re-fetch.
-- PostgreSQL: a sequence (nextval takes no lock another transaction would wait on).
CREATE SEQUENCE change_rev;
CREATE FUNCTION change_rev_bump() RETURNS trigger AS $$
BEGIN
    NEW.rev := nextval('change_rev');
    RETURN NEW;
END
$$ LANGUAGE plpgsql;


ALTER TABLE machines ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER machines_rev_insert BEFORE INSERT ON machines FOR EACH ROW EXECUTE FUNCTION change_rev_bump();
CREATE TRIGGER machines_rev_update BEFORE UPDATE ON machines FOR EACH ROW
WHEN (OLD.hostname IS DISTINCT FROM NEW.hostname OR OLD.status IS DISTINCT FROM NEW.status OR OLD.architecture IS DISTINCT FROM NEW.architecture OR OLD.boot_mac IS DISTINCT FROM NEW.boot_mac OR OLD.domain_id IS DISTINCT FROM NEW.domain_id)
EXECUTE FUNCTION change_rev_bump();

ALTER TABLE interfaces ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER interfaces_rev_insert BEFORE INSERT ON interfaces FOR EACH ROW EXECUTE FUNCTION change_rev_bump();
CREATE TRIGGER interfaces_rev_update BEFORE UPDATE ON interfaces FOR EACH ROW
WHEN (OLD.system_id IS DISTINCT FROM NEW.system_id OR OLD.name IS DISTINCT FROM NEW.name OR OLD.mac IS DISTINCT FROM NEW.mac OR OLD.subnet_id IS DISTINCT FROM NEW.subnet_id OR OLD.ip IS DISTINCT FROM NEW.ip)
EXECUTE FUNCTION change_rev_bump();

ALTER TABLE subnets ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER subnets_rev_insert BEFORE INSERT ON subnets FOR EACH ROW EXECUTE FUNCTION change_rev_bump();
CREATE TRIGGER subnets_rev_update BEFORE UPDATE ON subnets FOR EACH ROW EXECUTE FUNCTION change_rev_bump();

ALTER TABLE deployments ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER deployments_rev_insert BEFORE INSERT ON deployments FOR EACH ROW EXECUTE FUNCTION change_rev_bump();
CREATE TRIGGER deployments_rev_update BEFORE UPDATE ON deployments FOR EACH ROW
WHEN (OLD.system_id IS DISTINCT FROM NEW.system_id OR OLD.target IS DISTINCT FROM NEW.target OR OLD.state IS DISTINCT FROM NEW.state OR OLD.esp_uuid IS DISTINCT FROM NEW.esp_uuid)
EXECUTE FUNCTION change_rev_bump();

ALTER TABLE boot_resources ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER boot_resources_rev_insert BEFORE INSERT ON boot_resources FOR EACH ROW EXECUTE FUNCTION change_rev_bump();
CREATE TRIGGER boot_resources_rev_update BEFORE UPDATE ON boot_resources FOR EACH ROW EXECUTE FUNCTION change_rev_bump();

ALTER TABLE boot_resource_files ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER boot_resource_files_rev_insert BEFORE INSERT ON boot_resource_files FOR EACH ROW EXECUTE FUNCTION change_rev_bump();
CREATE TRIGGER boot_resource_files_rev_update BEFORE UPDATE ON boot_resource_files FOR EACH ROW EXECUTE FUNCTION change_rev_bump();

ALTER TABLE dns_domains ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER dns_domains_rev_insert BEFORE INSERT ON dns_domains FOR EACH ROW EXECUTE FUNCTION change_rev_bump();
CREATE TRIGGER dns_domains_rev_update BEFORE UPDATE ON dns_domains FOR EACH ROW EXECUTE FUNCTION change_rev_bump();

ALTER TABLE dns_records ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER dns_records_rev_insert BEFORE INSERT ON dns_records FOR EACH ROW EXECUTE FUNCTION change_rev_bump();
CREATE TRIGGER dns_records_rev_update BEFORE UPDATE ON dns_records FOR EACH ROW EXECUTE FUNCTION change_rev_bump();
