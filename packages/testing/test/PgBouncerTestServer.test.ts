/**
 * The PgBouncer harness against a real pgbouncer and a real PostgreSQL: TLS on both legs, SCRAM
 * from the auth_file, transaction pooling, and nothing left running after the scope.
 */
import { expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as FsP from "node:fs/promises"
import * as Pg from "pg"
import { PgBouncerTestServer, PgTestServer, TestPki } from "@takumi/testing"

const PASSWORD = "bouncer-harness-Pa55-7e21"

class Env extends Context.Tag("test/PgBouncerTestServer/Env")<Env, {
  readonly pki: TestPki.TestPki
  readonly server: PgTestServer.PgTestServer
  readonly bouncer: PgBouncerTestServer.PgBouncerTestServer
}>() {}

const EnvLive = Layer.scoped(
  Env,
  Effect.gen(function*() {
    const pki = yield* TestPki.make
    const server = yield* PgTestServer.make({ certificate: pki.server })
    yield* server.createRole({ name: "app", password: PASSWORD })
    yield* server.createDatabase("app", "app")
    const bouncer = yield* PgBouncerTestServer.make({
      server,
      certificate: pki.server,
      serverCa: pki.ca.certPem,
      users: ["app"],
      defaultPoolSize: 1
    })
    return { pki, server, bouncer }
  })
)

const clientOf = (
  env: Context.Tag.Service<Env>,
  port: number,
  extra: Partial<Pg.ClientConfig> = {}
): Effect.Effect<Pg.Client, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const client = new Pg.Client({
          host: "127.0.0.1",
          port,
          user: "app",
          database: "app",
          password: PASSWORD,
          ssl: { ca: env.pki.ca.certPem, rejectUnauthorized: true, servername: "localhost" },
          ...extra
        })
        client.on("error", () => {})
        await client.connect()
        return client
      },
      catch: (cause) => cause instanceof Error ? cause : new Error(String(cause))
    }),
    (client) => Effect.promise(() => client.end().catch(() => undefined))
  )

const rows = (client: Pg.Client, sql: string) => Effect.promise(() => client.query(sql).then((r) => r.rows))

layer(EnvLive, { timeout: 60_000, excludeTestServices: true })("PgBouncerTestServer", (it) => {
  it.scoped("accepts a SCRAM login over verified TLS and reaches PostgreSQL over TLS", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const client = yield* clientOf(env, env.bouncer.port)
      const socket = client.connection.stream
      expect(socket).toHaveProperty("encrypted", true)
      // pg_stat_ssl describes the backend PgBouncer opened: its leg to the server
      const [leg] = yield* rows(client, "select ssl from pg_stat_ssl where pid = pg_backend_pid()")
      expect(leg).toEqual({ ssl: true })
      const [who] = yield* rows(client, "select current_user as u, current_database() as d")
      expect(who).toEqual({ u: "app", d: "app" })
    }))

  it.scoped("pools in transaction mode: two clients share one server connection", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const first = yield* clientOf(env, env.bouncer.port)
      const second = yield* clientOf(env, env.bouncer.port)
      const [a] = yield* rows(first, "select pg_backend_pid() as pid")
      const [b] = yield* rows(second, "select pg_backend_pid() as pid")
      // default_pool_size = 1: both clients are served by the same backend, one transaction at a time
      expect(a?.["pid"]).toBe(b?.["pid"])
    }))

  it.scoped("refuses a startup parameter it does not track (08P01)", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const refused = yield* Effect.exit(clientOf(env, env.bouncer.port, { statement_timeout: 1000 }))
      expect(Exit.isFailure(refused)).toBe(true)
      const error = Exit.isFailure(refused) ? String(refused.cause) : ""
      expect(error).toContain("unsupported startup parameter: statement_timeout")
    }))

  it.effect("checks the server leg with verify-full: a server certificate for another host is refused", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const refused = yield* Effect.scoped(Effect.gen(function*() {
        const wrongHost = yield* PgTestServer.make({ certificate: env.pki.wrongHost })
        yield* wrongHost.createRole({ name: "app", password: PASSWORD })
        const bouncer = yield* PgBouncerTestServer.make({
          server: wrongHost,
          certificate: env.pki.server,
          serverCa: env.pki.ca.certPem,
          users: ["app"],
          // the client waits in PgBouncer's queue while it retries the server login: end that soon
          extraConf: { query_wait_timeout: "3" }
        })
        const exit = yield* Effect.exit(Effect.scoped(clientOf(env, bouncer.port, { database: "postgres" })))
        const log = yield* Effect.promise(() => FsP.readFile(bouncer.logFile, "utf8"))
        return { exit, log }
      }))
      expect(Exit.isFailure(refused.exit)).toBe(true)
      expect(refused.log).toMatch(/TLS handshake error|certificate|name does not match/i)
    }))

  it.effect("is gone after its scope closes", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const scope = yield* Scope.make()
      const bouncer = yield* PgBouncerTestServer.make({
        server: env.server,
        certificate: env.pki.server,
        serverCa: env.pki.ca.certPem,
        users: ["app"]
      }).pipe(Scope.extend(scope))
      yield* Effect.scoped(clientOf(env, bouncer.port))
      yield* Scope.close(scope, Exit.void)
      const after = yield* Effect.exit(Effect.scoped(clientOf(env, bouncer.port)))
      expect(Exit.isFailure(after)).toBe(true)
      expect(() => process.kill(bouncer.pid, 0)).toThrow()
    }))
})

