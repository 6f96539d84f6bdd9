-- Per-subnet NTP servers and DHCP lease time.
ALTER TABLE subnets ADD COLUMN ntp_servers TEXT NOT NULL DEFAULT '[]';
ALTER TABLE subnets ADD COLUMN lease_time_secs INTEGER;
