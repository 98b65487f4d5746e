/**
 * Rendering `pgbouncer.ini` and its `auth_file` for a PgBouncer test server.
 *
 * @internal
 */

/** One line `key = value`; PgBouncer reads the value up to the end of the line, so none may span lines. */
const line = ([key, value]: readonly [string, string]): string => `${key} = ${value.replace(/[\r\n]+/g, " ")}\n`

/** @internal */
export const renderIni = (
  databases: ReadonlyArray<readonly [string, string]>,
  pgbouncer: ReadonlyArray<readonly [string, string]>
): string =>
  `; written by @takumi/testing PgBouncerTestServer\n[databases]\n${databases.map(line).join("")}` +
  `[pgbouncer]\n${pgbouncer.map(line).join("")}`

const quoted = (value: string): string => `"${value.replace(/"/g, "\"\"")}"`

/**
 * The `auth_file`: one `"user" "secret"` line per role, the secret as PostgreSQL stores it in
 * `pg_authid.rolpassword` (a `SCRAM-SHA-256$4096:…` verifier). With SCRAM verifiers PgBouncer
 * authenticates the client and then logs in to PostgreSQL with the keys the client proved.
 *
 * @internal
 */
export const renderAuthFile = (entries: ReadonlyArray<{ readonly user: string; readonly secret: string }>): string =>
  entries.map(({ secret, user }) => `${quoted(user)} ${quoted(secret)}\n`).join("")
