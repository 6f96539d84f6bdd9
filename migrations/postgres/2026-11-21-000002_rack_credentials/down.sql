DROP INDEX racks_token_hash;
ALTER TABLE racks DROP COLUMN token_hash;
DROP TABLE settings;
