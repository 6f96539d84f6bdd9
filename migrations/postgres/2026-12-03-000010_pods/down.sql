ALTER TABLE machines DROP COLUMN pod_id;
DROP TABLE pod_jobs;
DROP TABLE pods;
