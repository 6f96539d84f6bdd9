ALTER TABLE subnets DROP COLUMN relay_addresses;
