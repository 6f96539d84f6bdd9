DROP INDEX audit_log_created_at;
DROP INDEX events_created_at;
DROP INDEX interfaces_ip_unique;
ALTER TABLE api_tokens DROP COLUMN scope;
