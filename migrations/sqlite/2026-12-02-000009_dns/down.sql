ALTER TABLE deployments DROP COLUMN proxy;
ALTER TABLE machines DROP COLUMN domain_id;
DROP TABLE dns_records;
DROP TABLE dns_domains;
