DROP TABLE erasures;
DROP TABLE deployments;
DROP TABLE ssh_keys;
