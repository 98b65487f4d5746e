/**
 * Rendering `takumi.conf` (included from postgresql.conf) and `pg_hba.conf` from settings.
 *
 * @internal
 */

/** @internal */
export interface HbaRuleLike {
  readonly type: "hostssl" | "hostnossl" | "host"
  readonly method: string
  readonly clientCert?: "verify-ca" | "verify-full"
  readonly database?: string
  readonly user?: string
  readonly address?: string
}

/** @internal */
export const quote = (value: string): string => `'${value.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`

/** @internal */
export const renderConf = (entries: ReadonlyArray<readonly [string, string]>): string =>
  `# written by @takumi/testing PgTestServer; rewritten on every start and reload\n${
    entries.map(([key, value]) => `${key} = ${quote(value)}\n`).join("")
  }`

// The superuser reaches the server over its private unix socket without a password; that line
// (and the replication one a standby's pg_basebackup and walreceiver use) is always kept.
const LOCAL_LINES = [
  "local all postgres trust",
  "local replication postgres trust"
]

const hbaField = (value: string | undefined): string => {
  if (value === undefined) return "all"
  return /^[A-Za-z0-9_.,+-]+$/.test(value) ? value : `"${value.replace(/"/g, "\"\"")}"`
}

/** @internal */
export const renderHba = (rules: ReadonlyArray<HbaRuleLike>): string =>
  [
    "# written by @takumi/testing PgTestServer",
    ...LOCAL_LINES,
    ...rules.map((rule) =>
      [
        rule.type,
        hbaField(rule.database),
        hbaField(rule.user),
        rule.address ?? "127.0.0.1/32",
        rule.method,
        ...(rule.clientCert === undefined ? [] : [`clientcert=${rule.clientCert}`])
      ].join(" ")
    ),
    ""
  ].join("\n")
