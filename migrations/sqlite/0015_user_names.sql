-- Provisioning (issue 22): the name an identity provider or an HR file
-- knows a user by, to match on. `user_name` is SCIM's userName, unique
-- without regard to case (`user_name_key` is its lowercase form);
-- `external_id` is SCIM's externalId, the provider's own id, unique as
-- given. Both are NULL for users an administrator made without them.
ALTER TABLE app_user ADD COLUMN user_name TEXT;
ALTER TABLE app_user ADD COLUMN user_name_key TEXT;
ALTER TABLE app_user ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX app_user_user_name_key ON app_user (user_name_key);
CREATE UNIQUE INDEX app_user_external_id ON app_user (external_id);

-- What the identity provider last sent of a user through SCIM, as it sent
-- it (JSON: displayName, name, emails, active, the enterprise extension's
-- department), so that SCIM reads give back exactly what was written.
-- The user's Curbside name, department and status are derived from it at
-- each SCIM write.
CREATE TABLE scim_user (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES app_user (user_id),
    resource TEXT NOT NULL
);

-- Who deactivated a deactivated user: `admin` or `scim`. SCIM never
-- reactivates a user an administrator deactivated.
ALTER TABLE app_user ADD COLUMN deactivated_by TEXT;
