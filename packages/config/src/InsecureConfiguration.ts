/**
 * The error the security policy refuses a configuration with.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * The security rules, each named so callers and operators can tell which one fired.
 *
 * - `tls-required`: TLS to the database is off.
 * - `certificate-validation`: the server certificate is not verified.
 * - `tls-min-version`: the minimum TLS version is below TLSv1.2.
 * - `secrets-backend-env`: the password comes from environment variables, not a vault.
 * - `password-in-environment`: a database password is set in the environment (`DB_PASSWORD` or
 *   the password part of `DATABASE_URL`).
 * - `dotenv-credentials`: a `.env` file in the working directory holds a credential (`DB_PASSWORD`,
 *   `DATABASE_URL` with a password, `VAULT_TOKEN`, a key, an AWS secret key).
 * - `dotenv-version-control`: the `.env` file that would be loaded is tracked by git, or sits in
 *   a git work tree without being ignored.
 * - `secret-path-environment`: `SECRETS_PREFIX` or `VAULT_PATH` names another environment.
 * - `secrets-transport-tls`: the secrets backend is reached over plain `http://`.
 * - `tls-verification-override`: the process environment turns verification off behind the
 *   configuration's back (`NODE_TLS_REJECT_UNAUTHORIZED=0` for every Node TLS client,
 *   `VAULT_SKIP_VERIFY` with any non-empty value, even "false", for node-vault).
 * - `password-auth-method`: `DB_REQUIRE_AUTH` accepts `md5` or `password` (cleartext), which
 *   hand the password (or its hash) to whichever server asks.
 * - `channel-binding`: `DB_CHANNEL_BINDING=disable`, so SCRAM is never bound to the TLS channel.
 * - `credential-max-age`: `DB_CREDENTIAL_MAX_AGE` above 90 days, past the requirements' "rotate
 *   credentials regularly (every 90 days minimum)" (refused in production, warned elsewhere).
 * - `public-ca-trust` (a warning, never a refusal): no `DB_SSL_CA`, so the server is trusted
 *   through the public CA store (and `NODE_EXTRA_CA_CERTS`).
 * - `rds-iam-tls`: `SECRETS_BACKEND=rds-iam` without TLS or without certificate validation: the
 *   IAM token goes to the server in cleartext, so only a verified server may receive it.
 * - `vault-secret-id-inline` (a warning, never a refusal): in staging or production the AppRole
 *   `secret_id` is given as `VAULT_SECRET_ID` rather than a mounted file (`VAULT_SECRET_ID_FILE`).
 *
 * @since 0.1.0
 * @category models
 */
export const Rule = Schema.Literal(
  "tls-required",
  "certificate-validation",
  "tls-min-version",
  "secrets-backend-env",
  "password-in-environment",
  "dotenv-credentials",
  "dotenv-version-control",
  "secret-path-environment",
  "secrets-transport-tls",
  "tls-verification-override",
  "password-auth-method",
  "channel-binding",
  "public-ca-trust",
  "credential-max-age",
  "rds-iam-tls",
  "vault-secret-id-inline"
)

/**
 * @since 0.1.0
 * @category models
 */
export type Rule = typeof Rule.Type

/**
 * The configuration is valid but not safe for its environment: the program refuses to start.
 * `rule` names the rule, `variable` the variable to change, `message` says how to fix it.
 *
 * @since 0.1.0
 * @category errors
 */
export class InsecureConfiguration extends Schema.TaggedError<InsecureConfiguration>()("InsecureConfiguration", {
  rule: Rule,
  variable: Schema.String,
  environment: Schema.Literal("development", "test", "staging", "production"),
  message: Schema.String
}) {}
