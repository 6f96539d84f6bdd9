DROP TABLE power_jobs;
ALTER TABLE machines DROP COLUMN skip_bmc_config;
ALTER TABLE machines DROP COLUMN power_state_at;
ALTER TABLE machines DROP COLUMN power_state;
ALTER TABLE machines DROP COLUMN power_secrets;
