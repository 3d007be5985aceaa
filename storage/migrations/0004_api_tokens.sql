-- Tokens of the public API's callers (people, bots, pipelines), apart from
-- the probes' tokens: a probe token is not an API token and an API token
-- opens no probe stream. Only the SHA-256 of a token is stored.
CREATE TABLE api_tokens (
  id             serial PRIMARY KEY,
  -- Unique for ever, revoked tokens included: a name in a log or an audit
  -- trail always means one token.
  name           text NOT NULL UNIQUE,
  token_sha256   text NOT NULL UNIQUE,
  -- admin implies write implies read (coordinator/api_auth.h).
  role           text NOT NULL CHECK (role IN ('read', 'write', 'admin')),
  create_time    timestamptz NOT NULL DEFAULT now(),
  -- Updated at most once a minute per token.
  last_used_time timestamptz,
  revoke_time    timestamptz
);
