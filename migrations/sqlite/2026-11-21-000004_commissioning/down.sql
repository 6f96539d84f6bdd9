DROP TABLE script_results;
DROP TABLE scripts;
DROP TABLE boot_tokens;
ALTER TABLE machines DROP COLUMN hardware;
DROP INDEX events_mac;
ALTER TABLE events DROP COLUMN mac;
