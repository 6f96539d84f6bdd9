DROP INDEX rack_enrolment_tokens_expires_at;
DROP TABLE rack_enrolment_tokens;
ALTER TABLE racks DROP COLUMN power_networks;
ALTER TABLE racks DROP COLUMN approval;
