ALTER TABLE subnets DROP COLUMN lease_time_secs;
ALTER TABLE subnets DROP COLUMN ntp_servers;
