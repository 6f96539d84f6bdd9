-- Racks long-poll a fingerprint of what their snapshot holds. A row's clock time cannot say it
-- changed: a transaction that read the clock first can commit last, under an already newer maximum,
-- and the rack never sees it. Instead every insert of a row racks serve, and every update of a
-- column they serve, gives the row the next number of one counter (rev), so each table's
-- (count, sum of rev) moves on with every committed change, in whatever order they commit.
-- Updates racks do not serve (power state, tags, hardware) leave rev alone: racks do not re-fetch.
-- SQLite has one writer at a time: the counter is a row, bumped by triggers.
CREATE TABLE change_counter (id INTEGER PRIMARY KEY CHECK (id = 1), value BIGINT NOT NULL);
INSERT INTO change_counter (id, value) VALUES (1, 0);


ALTER TABLE machines ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER machines_rev_insert AFTER INSERT ON machines BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE machines SET rev = (SELECT value FROM change_counter WHERE id = 1) WHERE rowid = NEW.rowid;
END;
CREATE TRIGGER machines_rev_update AFTER UPDATE ON machines
WHEN NEW.rev = OLD.rev AND (NEW.hostname IS NOT OLD.hostname OR NEW.status IS NOT OLD.status OR NEW.architecture IS NOT OLD.architecture OR NEW.boot_mac IS NOT OLD.boot_mac OR NEW.domain_id IS NOT OLD.domain_id) BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE machines SET rev = (SELECT value FROM change_counter WHERE id = 1) WHERE rowid = NEW.rowid;
END;

ALTER TABLE interfaces ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER interfaces_rev_insert AFTER INSERT ON interfaces BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE interfaces SET rev = (SELECT value FROM change_counter WHERE id = 1) WHERE rowid = NEW.rowid;
END;
CREATE TRIGGER interfaces_rev_update AFTER UPDATE ON interfaces
WHEN NEW.rev = OLD.rev AND (NEW.system_id IS NOT OLD.system_id OR NEW.name IS NOT OLD.name OR NEW.mac IS NOT OLD.mac OR NEW.subnet_id IS NOT OLD.subnet_id OR NEW.ip IS NOT OLD.ip) BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE interfaces SET rev = (SELECT value FROM change_counter WHERE id = 1) WHERE rowid = NEW.rowid;
END;

ALTER TABLE subnets ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER subnets_rev_insert AFTER INSERT ON subnets BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE subnets SET rev = (SELECT value FROM change_counter WHERE id = 1) WHERE rowid = NEW.rowid;
END;
CREATE TRIGGER subnets_rev_update AFTER UPDATE ON subnets WHEN NEW.rev = OLD.rev BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE subnets SET rev = (SELECT value FROM change_counter WHERE id = 1) WHERE rowid = NEW.rowid;
END;

ALTER TABLE deployments ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER deployments_rev_insert AFTER INSERT ON deployments BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE deployments SET rev = (SELECT value FROM change_counter WHERE id = 1) WHERE rowid = NEW.rowid;
END;
CREATE TRIGGER deployments_rev_update AFTER UPDATE ON deployments
WHEN NEW.rev = OLD.rev AND (NEW.system_id IS NOT OLD.system_id OR NEW.target IS NOT OLD.target OR NEW.state IS NOT OLD.state OR NEW.esp_uuid IS NOT OLD.esp_uuid) BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE deployments SET rev = (SELECT value FROM change_counter WHERE id = 1) WHERE rowid = NEW.rowid;
END;

ALTER TABLE boot_resources ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER boot_resources_rev_insert AFTER INSERT ON boot_resources BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE boot_resources SET rev = (SELECT value FROM change_counter WHERE id = 1) WHERE rowid = NEW.rowid;
END;
CREATE TRIGGER boot_resources_rev_update AFTER UPDATE ON boot_resources WHEN NEW.rev = OLD.rev BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE boot_resources SET rev = (SELECT value FROM change_counter WHERE id = 1) WHERE rowid = NEW.rowid;
END;

ALTER TABLE boot_resource_files ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER boot_resource_files_rev_insert AFTER INSERT ON boot_resource_files BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE boot_resource_files SET rev = (SELECT value FROM change_counter WHERE id = 1) WHERE rowid = NEW.rowid;
END;
CREATE TRIGGER boot_resource_files_rev_update AFTER UPDATE ON boot_resource_files WHEN NEW.rev = OLD.rev BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE boot_resource_files SET rev = (SELECT value FROM change_counter WHERE id = 1) WHERE rowid = NEW.rowid;
END;

ALTER TABLE dns_domains ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER dns_domains_rev_insert AFTER INSERT ON dns_domains BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE dns_domains SET rev = (SELECT value FROM change_counter WHERE id = 1) WHERE rowid = NEW.rowid;
END;
CREATE TRIGGER dns_domains_rev_update AFTER UPDATE ON dns_domains WHEN NEW.rev = OLD.rev BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE dns_domains SET rev = (SELECT value FROM change_counter WHERE id = 1) WHERE rowid = NEW.rowid;
END;

ALTER TABLE dns_records ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER dns_records_rev_insert AFTER INSERT ON dns_records BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE dns_records SET rev = (SELECT value FROM change_counter WHERE id = 1) WHERE rowid = NEW.rowid;
END;
CREATE TRIGGER dns_records_rev_update AFTER UPDATE ON dns_records WHEN NEW.rev = OLD.rev BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE dns_records SET rev = (SELECT value FROM change_counter WHERE id = 1) WHERE rowid = NEW.rowid;
END;
