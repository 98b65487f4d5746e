/**
 * The Vault double's database secrets engine: `GET /v1/<mount>/creds/<role>` creates a real
 * PostgreSQL role on the harness server (random name and password, `VALID UNTIL` the lease's
 * end, then the role's creation statements) and answers with a lease; `sys/leases/renew`
 * extends the lease (capped at the role's max TTL, as Vault caps it) and the role's
 * `VALID UNTIL`; `sys/leases/revoke` and the lease's expiry end the role's sessions and drop it.
 * Vault's own PostgreSQL plugin drops the role with its default revocation statements but leaves
 * open sessions running; this double terminates them first, so a client that still uses a
 * credential after its lease ended fails visibly instead of passing by accident.
 *
 * @internal
 */
import * as Crypto from "node:crypto"
import * as Http from "./httpDouble.js"

/** @internal */
export interface DatabaseRole {
  /** SQL run on creation, Vault's templates `{{name}}`, `{{password}}`, `{{expiration}}` filled in */
  readonly creationStatements: ReadonlyArray<string>
  /** the lease's TTL at creation and the default renewal increment, seconds */
  readonly defaultTtlSeconds: number
  /** no renewal takes the lease past its issue time plus this, seconds */
  readonly maxTtlSeconds: number
}

/** @internal */
export interface DatabaseEngineOptions {
  readonly mount: string
  readonly roles: Readonly<Record<string, DatabaseRole>>
  /** runs SQL as the superuser on the harness server */
  readonly execute: (sql: string) => Promise<ReadonlyArray<Record<string, unknown>>>
  /** a generated password, before it leaves the double */
  readonly onPassword: (password: string) => void
  readonly now: () => number
}

/** @internal */
export interface DatabaseLease {
  readonly leaseId: string
  readonly role: string
  readonly username: string
  readonly issuedAt: number
  expiresAt: number
  readonly maxExpiresAt: number
  renewals: number
  /** sessions of the role still open when it was revoked (terminated then) */
  sessionsEnded: number
  /** when the role was dropped (revoked or expired), once the drop has completed */
  endedAt: number | undefined
  /** set as the revocation starts: a lease being revoked is neither renewed nor revoked twice */
  endedBy: "revoke" | "expiry" | undefined
  timer: ReturnType<typeof setTimeout> | undefined
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, "\"\"")}"`
const quoteLiteral = (text: string) => `'${text.replace(/'/g, "''")}'`

/** PostgreSQL's timestamptz text, as Vault's `{{expiration}}` gives it */
const expiration = (millis: number) => new Date(millis).toISOString()

const randomText = (bytes: number) => Crypto.randomBytes(bytes).toString("base64url")

const errors = (status: number, messages: ReadonlyArray<string>) => Http.json(status, { errors: messages })

const leaseBody = (lease: DatabaseLease, now: number, extra: Record<string, unknown>) => ({
  request_id: Crypto.randomUUID(),
  lease_id: lease.leaseId,
  renewable: true,
  // Vault truncates to whole seconds
  lease_duration: Math.max(0, Math.floor((lease.expiresAt - now) / 1000)),
  wrap_info: null,
  auth: null,
  ...extra
})

const parseJson = (body: Buffer): Record<string, unknown> => {
  try {
    const parsed: unknown = JSON.parse(body.toString("utf8"))
    return typeof parsed === "object" && parsed !== null ? Object.fromEntries(Object.entries(parsed)) : {}
  } catch {
    return {}
  }
}

/** @internal */
export class DatabaseEngine {
  readonly leases = new Map<string, DatabaseLease>()
  /** roles whose creation, renewal or drop failed in PostgreSQL: a test asserts this stays empty */
  readonly failures: Array<string> = []

  constructor(readonly options: DatabaseEngineOptions) {}

  /** The answer for `url`, or `undefined` when it is not the engine's (the KV engine answers). */
  route(method: string, url: URL, body: Buffer): Promise<Http.HttpDoubleAnswer> | undefined {
    const creds = new RegExp(`^/v1/${this.options.mount}/creds/([^/]+)$`).exec(url.pathname)
    if (creds !== null && method === "GET") return this.issue(decodeURIComponent(creds[1] ?? ""))
    if (url.pathname === "/v1/sys/leases/renew" && (method === "PUT" || method === "POST")) {
      const request = parseJson(body)
      return Promise.resolve(this.renew(request.lease_id, request.increment))
    }
    if (url.pathname === "/v1/sys/leases/revoke" && (method === "PUT" || method === "POST")) {
      const leaseId = parseJson(body).lease_id
      return this.revoke(typeof leaseId === "string" ? leaseId : "", "revoke")
    }
    return undefined
  }

  private async issue(roleName: string): Promise<Http.HttpDoubleAnswer> {
    const role = this.options.roles[roleName]
    if (role === undefined) return errors(400, [`unknown role: ${roleName}`])
    const now = this.options.now()
    // Vault's default username template: v-<display name>-<role>-<random>-<unix time>, at most 63 bytes
    const username = `v-token-${roleName}-${randomText(12).toLowerCase().replace(/[^a-z0-9]/g, "x")}-${Math.floor(now / 1000)}`
      .slice(0, 63)
    const password = `A1a-${randomText(18)}`
    this.options.onPassword(password)
    const lease: DatabaseLease = {
      leaseId: `${this.options.mount}/creds/${roleName}/${randomText(18)}`,
      role: roleName,
      username,
      issuedAt: now,
      expiresAt: now + role.defaultTtlSeconds * 1000,
      maxExpiresAt: now + role.maxTtlSeconds * 1000,
      renewals: 0,
      sessionsEnded: 0,
      endedAt: undefined,
      endedBy: undefined,
      timer: undefined
    }
    const fill = (statement: string) =>
      statement
        .replaceAll("{{name}}", username)
        .replaceAll("{{password}}", password)
        .replaceAll("{{expiration}}", expiration(lease.expiresAt))
    try {
      for (const statement of role.creationStatements) await this.options.execute(fill(statement))
    } catch {
      this.failures.push(`create ${username}`)
      return errors(500, [`error creating the database user for role ${roleName}`])
    }
    this.leases.set(lease.leaseId, lease)
    this.schedule(lease)
    return Http.json(200, leaseBody(lease, now, { data: { username, password }, warnings: null }))
  }

  private schedule(lease: DatabaseLease): void {
    if (lease.timer !== undefined) clearTimeout(lease.timer)
    lease.timer = setTimeout(() => void this.revoke(lease.leaseId, "expiry"), lease.expiresAt - this.options.now())
  }

  private async renew(leaseId: unknown, increment: unknown): Promise<Http.HttpDoubleAnswer> {
    const lease = typeof leaseId === "string" ? this.leases.get(leaseId) : undefined
    if (lease === undefined || lease.endedBy !== undefined) return errors(400, ["lease not found or lease is not renewable"])
    const role = this.options.roles[lease.role]
    const now = this.options.now()
    const wanted = (typeof increment === "number" && increment > 0 ? increment : role?.defaultTtlSeconds ?? 0) * 1000
    const capped = now + wanted > lease.maxExpiresAt
    lease.expiresAt = Math.min(now + wanted, lease.maxExpiresAt)
    lease.renewals++
    try {
      // Vault's default renew statement for PostgreSQL
      await this.options.execute(
        `ALTER ROLE ${quoteIdent(lease.username)} VALID UNTIL ${quoteLiteral(expiration(lease.expiresAt))}`
      )
    } catch {
      this.failures.push(`renew ${lease.username}`)
      return errors(500, ["error renewing the database user"])
    }
    this.schedule(lease)
    return Http.json(200, leaseBody(lease, now, {
      data: null,
      warnings: capped
        ? [`TTL of "${wanted / 1000}s" exceeded the effective max_ttl; TTL value is capped accordingly`]
        : null
    }))
  }

  /** Ends the role's sessions and drops it; Vault answers 204 for a lease it does not know too. */
  async revoke(leaseId: string, by: "revoke" | "expiry"): Promise<Http.HttpDoubleAnswer> {
    const lease = this.leases.get(leaseId)
    if (lease === undefined || lease.endedBy !== undefined) return { _tag: "Respond", status: 204, headers: {}, body: "" }
    if (lease.timer !== undefined) clearTimeout(lease.timer)
    lease.endedBy = by
    try {
      const ended = await this.options.execute(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${quoteLiteral(lease.username)}`
      )
      lease.sessionsEnded = ended.length
      await this.options.execute(`DROP OWNED BY ${quoteIdent(lease.username)}`)
      await this.options.execute(`DROP ROLE IF EXISTS ${quoteIdent(lease.username)}`)
    } catch {
      this.failures.push(`drop ${lease.username}`)
    }
    lease.endedAt = this.options.now()
    return { _tag: "Respond", status: 204, headers: {}, body: "" }
  }

  /** Revokes every lease still alive (the double is closing). */
  async close(): Promise<void> {
    for (const lease of this.leases.values()) await this.revoke(lease.leaseId, "revoke")
  }
}
