-- Trust (#15). API tokens carry a scope: 'read', 'operator' or 'admin', never more than their user
-- (a token made before scopes existed keeps its user's full rights: 'admin' is capped by the user).
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin';

-- A static or leased address belongs to one interface. Duplicates a race may have left keep the
-- oldest interface's address.
UPDATE interfaces SET ip = NULL, subnet_id = NULL
WHERE ip IS NOT NULL AND EXISTS (
    SELECT 1 FROM interfaces o WHERE o.ip = interfaces.ip AND o.id < interfaces.id
);
CREATE UNIQUE INDEX interfaces_ip_unique ON interfaces (ip);

-- Old events and audit entries are pruned by age.
CREATE INDEX events_created_at ON events (created_at);
CREATE INDEX audit_log_created_at ON audit_log (created_at);
