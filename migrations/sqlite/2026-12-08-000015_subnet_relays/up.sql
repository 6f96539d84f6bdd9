-- Relay agents a subnet accepts relayed DHCP from (empty: any, as before).
ALTER TABLE subnets ADD COLUMN relay_addresses TEXT NOT NULL DEFAULT '[]';
