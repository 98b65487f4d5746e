/**
 * The startup check of the security posture: what the TLS socket negotiated (protocol, cipher),
 * what the server itself reports for our backend in `pg_stat_ssl`, whether the role is a
 * superuser or holds privileges an application rarely needs (`rolePrivileges`, read in the same
 * query) and whether the password is a well-known default. The server certificate's own
 * posture (self-signed, weak key, expiry) is checked on every connection, during the handshake,
 * by `certificatePosture`.
 *
 * @internal
 */
import * as Array from "effect/Array"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Tls from "node:tls"
import type * as Pg from "pg"
import type { DbSettings } from "@takumi/config"
import { InsecureServer, type PostureFinding, postureFix } from "../DbError.js"
import { UnencryptedConnection } from "../SecurityAlerts.js"
import { classifyRuntimeError, type ConnectTarget } from "./classify.js"
import type { Credentials } from "./credentials.js"
import { Monitor } from "./monitor.js"
import * as RolePrivileges from "./rolePrivileges.js"
import { isModernProtocol, isStrongCipher } from "./tlsOptions.js"

/** What the client side of the TLS socket saw. */
export interface SocketTls {
  readonly protocol: string | null
  readonly cipher: string
}

/** What the server reports about our own backend. */
export interface ServerView {
  readonly ssl: boolean
  readonly version: string | null
  readonly cipher: string | null
  readonly superuser: boolean
  readonly privileges: RolePrivileges.RolePrivileges
}

/** Everything the startup check looks at. */
export interface Posture {
  readonly socket: Option.Option<SocketTls>
  readonly server: ServerView
  readonly wellKnownPassword: boolean
  /** behind a pooler: the server settings the client could not send and the server lacks (internal/pooler.ts) */
  readonly pooler?: ReadonlyArray<PostureFinding>
}

const inspectSocket = (client: Pg.Client): Option.Option<SocketTls> => {
  const socket = client.connection.stream
  if (!(socket instanceof Tls.TLSSocket)) return Option.none()
  return Option.some({ protocol: socket.getProtocol(), cipher: socket.getCipher().name })
}

interface ServerRow extends RolePrivileges.PrivilegeRow {
  readonly ssl: boolean | null
  readonly version: string | null
  readonly cipher: string | null
  readonly rolsuper: boolean | null
}

/**
 * `pg_stat_ssl` is a view over `pg_stat_get_activity(NULL)`, every backend's status; the function
 * asked for our own backend gives the same columns without the view (cold on a new backend).
 * Exported for `bench/db-startup.bench.ts`, whose raw client runs it to show what the check costs
 * the server.
 */
export const postureQuery = `SELECT s.ssl, s.sslversion AS version, s.sslcipher AS cipher, r.rolsuper, ${RolePrivileges.columns}
FROM pg_stat_get_activity(pg_backend_pid()) s CROSS JOIN pg_roles r
WHERE r.rolname = current_user`

/** Posture queries sent by `sendEarly` whose answer `inspect` has not read yet. */
const sentEarly = new WeakMap<Pg.Client, Promise<Pg.QueryResult<ServerRow>>>()

/**
 * Sends the posture query on a connection the moment it is open (from pg's connect callback), so
 * that the server runs it while the client is still on its way to `inspect`, which then reads this
 * answer instead of sending the query again. A connection that never reaches `inspect` is released
 * with an error, which ends it and fails this query; the failure is left for `inspect` to classify,
 * so it is not reported here.
 */
export const sendEarly = (client: Pg.Client): void => {
  const answer = client.query<ServerRow>(postureQuery)
  answer.catch(() => {})
  sentEarly.set(client, answer)
}

const answerOf = (client: Pg.Client): Promise<Pg.QueryResult<ServerRow>> => {
  const early = sentEarly.get(client)
  if (early === undefined) return client.query<ServerRow>(postureQuery)
  sentEarly.delete(client)
  return early
}

/** Reads the posture of one freshly opened connection. */
export const inspect = (
  client: Pg.Client,
  target: ConnectTarget,
  credentials: Credentials
): Effect.Effect<Posture, ReturnType<typeof classifyRuntimeError>> =>
  Effect.gen(function*() {
    const socket = inspectSocket(client)
    const result = yield* Effect.tryPromise({
      try: () => answerOf(client),
      catch: (cause) => classifyRuntimeError(cause, target)
    })
    const row = result.rows[0]
    return {
      socket,
      server: {
        ssl: row?.ssl === true,
        version: row?.version ?? null,
        cipher: row?.cipher ?? null,
        superuser: row?.rolsuper === true,
        privileges: RolePrivileges.decode(row)
      },
      wellKnownPassword: credentials.lastPasswordWasWellKnown() === true
    }
  })

/**
 * The role's privileges as the posture judges them; none for a superuser, who holds every one
 * and is refused as `SuperuserRole` already.
 */
const privilegeFindings = (server: ServerView): Array<RolePrivileges.PrivilegeFinding> =>
  server.superuser ? [] : RolePrivileges.findings(server.privileges)

/**
 * The privileges production warns about but does not refuse (CREATEROLE, CREATEDB, REPLICATION,
 * pg_read_all_data, pg_write_all_data, database ownership, CREATE on public): an application
 * rarely needs them, and migrations run as the owner are common enough that refusing would
 * break working deployments. `takumi-db doctor` lists them in every environment.
 */
export const advisories = (posture: Posture): Array<PostureFinding> =>
  privilegeFindings(posture.server).filter((f) => !f.refused).map(({ detail, rule }) => ({ rule, detail }))

/** The policy violations in a posture, in a stable order. */
export const findings = (posture: Posture): Array<PostureFinding> => {
  const out: Array<PostureFinding> = []
  const { server, socket } = posture
  if (Option.isNone(socket) || !server.ssl) {
    out.push({
      rule: "TlsNotNegotiated",
      detail: `the connection is not encrypted (socket: ${Option.isSome(socket) ? "TLS" : "plain TCP"}, ` +
        `pg_stat_ssl.ssl: ${server.ssl})`
    })
  }
  const protocols = Array.dedupe([
    ...(Option.isSome(socket) && socket.value.protocol !== null ? [socket.value.protocol] : []),
    ...(server.ssl && server.version !== null ? [server.version] : [])
  ])
  const old = protocols.filter((p) => !isModernProtocol(p))
  if (old.length > 0) out.push({ rule: "ProtocolTooOld", detail: `negotiated ${old.join(", ")}` })
  const ciphers = Array.dedupe([
    ...(Option.isSome(socket) ? [socket.value.cipher] : []),
    ...(server.ssl && server.cipher !== null ? [server.cipher] : [])
  ])
  const weak = ciphers.filter((c) => !isStrongCipher(c))
  if (weak.length > 0) out.push({ rule: "WeakCipher", detail: `negotiated cipher ${weak.join(", ")}` })
  if (server.superuser) out.push({ rule: "SuperuserRole", detail: "the database role is a superuser (rolsuper)" })
  for (const f of privilegeFindings(server)) if (f.refused) out.push({ rule: f.rule, detail: f.detail })
  if (posture.wellKnownPassword) {
    out.push({ rule: "DefaultPassword", detail: "the password is a well-known default or equals the user name" })
  }
  out.push(...(posture.pooler ?? []))
  return out
}

/**
 * Applies the policy to a posture: production fails with `InsecureServer` naming every finding
 * and warns about each advisory; other environments log each finding as a warning.
 */
export const enforce = (
  posture: Posture,
  settings: DbSettings,
  target: ConnectTarget
): Effect.Effect<void, InsecureServer> =>
  Effect.gen(function*() {
    const annotations = { host: target.host, port: target.port }
    // with SecureSqlClient.layer the alerts go through SecurityAlerts (logged, counted, streamed)
    const monitor = yield* Effect.serviceOption(Monitor)
    const found = findings(posture)
    const plaintext = found.find((f) => f.rule === "TlsNotNegotiated")
    if (plaintext !== undefined && Option.isSome(monitor)) {
      yield* monitor.value.unencrypted(
        new UnencryptedConnection({
          host: target.host,
          port: target.port,
          reason: settings.tls.enabled ? plaintext.detail : `${plaintext.detail}; TLS is disabled by configuration (DB_SSL=false)`,
          source: plaintext.rule
        })
      )
    }
    const production = settings.environment === "production"
    if (production && Array.isNonEmptyArray(found)) {
      return yield* new InsecureServer({ host: target.host, port: target.port, findings: found })
    }
    const warn = (prefix: string) => (f: PostureFinding) =>
      Effect.logWarning(`${prefix}: ${f.detail} — fix: ${postureFix[f.rule]}`).pipe(
        Effect.annotateLogs({ ...annotations, rule: f.rule })
      )
    yield* Effect.forEach(found, warn("Insecure PostgreSQL setup (refused in production)"), { discard: true })
    if (production) {
      yield* Effect.forEach(advisories(posture), warn("Least privilege: the application rarely needs this"), {
        discard: true
      })
    }
  })
