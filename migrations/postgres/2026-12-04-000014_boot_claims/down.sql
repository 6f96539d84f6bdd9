DROP TABLE boot_claims;
