-- A token's scopes as a JSON list of "module.action" names; NULL for a token that carries all of its owner's holdings.
ALTER TABLE api_tokens ADD COLUMN permissions TEXT;
