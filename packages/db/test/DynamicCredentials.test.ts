/**
 * Vault dynamic database credentials rolled into the pool, for real: SecureSqlClient over the
 * Vault backend (the real node-vault client) against the Vault double acting as the database
 * secrets engine, which creates and drops real roles on a real PostgreSQL 15 server. TTLs are a
 * few seconds of real time (roles, VALID UNTIL and sessions are PostgreSQL's, not a TestClock's).
 */
import { expect, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { type DatabaseCredentials, SecretsBackend } from "@takumi/secrets"
import { type PgTestServer, TestDatabase, VaultDouble } from "@takumi/testing"
import { SecureSqlClient } from "../src/index.js"
import { configLayer, makeSettings } from "./fixtures.js"

const APP_PASSWORD = "app-Pa55word-dynamic-71c3"
const TOKEN = "hvs.dynamic-credentials-test-token-5e1f"
const TTL_SECONDS = 4
const MAX_TTL_SECONDS = 8

const database = TestDatabase.layer({ roles: [{ name: "app", password: APP_PASSWORD }], database: "app" })

type Env = Context.Tag.Service<TestDatabase.TestDatabase>

/** The double's database engine on the fixture's server: role `app` grants membership in `app`. */
const startVault = (server: PgTestServer.PgTestServer) =>
  VaultDouble.makeWithDatabase({
    token: TOKEN,
    database: {
      roles: {
        app: {
          creationStatements: [
            `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' IN ROLE app`
          ],
          defaultTtlSeconds: TTL_SECONDS,
          maxTtlSeconds: MAX_TTL_SECONDS
        }
      },
      execute: (sql) => server.query(sql)
    }
  })

/** SecureSqlClient over the Vault backend with VAULT_DB_ROLE=app, built in `scope`. */
const connect = (env: Env, address: string, scope: Scope.Scope, idleTimeout: Duration.Duration) =>
  Effect.gen(function*() {
    const base = makeSettings(env.server, env.pki, { idleTimeout })
    const settings = {
      ...base,
      secrets: {
        ...base.secrets,
        backend: "vault" as const,
        requestTimeout: Duration.seconds(5),
        vault: Option.some({
          address,
          auth: { method: "token" as const, token: Redacted.make(TOKEN) },
          path: "secret/takumi/test",
          namespace: Option.none(),
          caCert: Option.none(),
          redirectHosts: [],
          database: Option.some({ role: "app", mount: "database" })
        })
      }
    }
    const config = configLayer(settings)
    const layer = SecureSqlClient.layer.pipe(
      Layer.provideMerge(SecretsBackend.layerVault.pipe(Layer.provide(config))),
      Layer.provide(config)
    )
    const context = yield* Layer.buildWithScope(layer, scope)
    return { sql: Context.get(context, SqlClient.SqlClient), backend: Context.get(context, SecretsBackend) }
  })

const rolesLeft = (server: PgTestServer.PgTestServer, names: ReadonlyArray<string>) =>
  server.query("SELECT rolname FROM pg_roles WHERE rolname = ANY($1)", [names]).pipe(
    Effect.map((rows) => rows.map((row) => String(row["rolname"]))),
    Effect.orDie
  )

interface Sample {
  readonly user: string
  readonly pid: number
  readonly backendStart: number
}

layer(database, { timeout: 120_000, excludeTestServices: true })("Vault dynamic database credentials", (it) => {
  it.scoped(
    "rolls over under load: zero failed queries, new connections on the newest user, old roles gone after their leases",
    () =>
      Effect.gen(function*() {
        const env = yield* TestDatabase.TestDatabase
        const vault = yield* startVault(env.server)
        const { sql } = yield* connect(env, vault.address, yield* Effect.scope, Duration.seconds(30))
        const samples = yield* Ref.make<ReadonlyArray<Sample>>([])
        const failures = yield* Ref.make<ReadonlyArray<string>>([])
        // each statement takes 50 ms on the server, so connections are often busy when a rollover comes
        const query = sql<{ readonly u: string; readonly pid: number; readonly started: string }>`
          SELECT current_user AS u, pg_backend_pid() AS pid, pg_sleep(0.05)::text AS slept,
                 (SELECT backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()) AS started`
        const record = query.pipe(
          Effect.either,
          Effect.flatMap(Either.match({
            onLeft: (error) => Ref.update(failures, (all) => [...all, error.message]),
            onRight: (rows) =>
              Ref.update(samples, (all) => [
                ...all,
                ...rows.map((row) => ({ user: row.u, pid: row.pid, backendStart: new Date(row.started).getTime() }))
              ])
          }))
        )
        // two rollovers, and the second old lease ended: the first three leases are issued and two have ended
        const done = Effect.map(vault.database.leases, (leases) =>
          leases.length >= 3 && leases.filter((lease) => Option.isSome(lease.ended)).length >= 2)
        const worker = record.pipe(Effect.repeat({ until: () => false, schedule: Schedule.spaced("10 millis") }))
        yield* Effect.raceFirst(
          Effect.all([worker, worker, worker, worker, worker, worker], { concurrency: "unbounded", discard: true }),
          done.pipe(Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (ok) => ok }))
        ).pipe(Effect.timeout("90 seconds"))

        expect(yield* Ref.get(failures)).toEqual([])
        const leases = yield* vault.database.leases
        const all = yield* Ref.get(samples)
        const generationOf = new Map(leases.map((lease, index) => [lease.username, index]))
        const users = new Set(all.map((sample) => sample.user))
        expect(users.size).toBeGreaterThanOrEqual(3)
        for (const user of users) expect(generationOf.has(user)).toBe(true)
        // every connection took the newest pair: none uses a pair older than the newest one that was
        // issued 2 s before it started (the slack covers publishing and connecting on a loaded machine)
        const connections = new Map(all.map((sample) => [sample.pid, sample]))
        for (const connection of connections.values()) {
          const newestIssued = leases.reduce(
            (newest, lease, index) => lease.issuedAt.getTime() <= connection.backendStart - 2_000 ? index : newest,
            -1
          )
          expect(generationOf.get(connection.user)).toBeGreaterThanOrEqual(newestIssued)
        }
        // the old leases ended at their end (expiry, not revoked early) and their roles are gone
        const ended = leases.filter((lease) => Option.isSome(lease.ended))
        for (const lease of ended) expect(Option.map(lease.ended, (end) => end.by)).toEqual(Option.some("expiry"))
        // and no connection was still open on them then: the pool had retired them all before the end
        expect(ended.map((lease) => lease.sessionsEnded)).toEqual(ended.map(() => 0))
        expect(yield* rolesLeft(env.server, ended.map((lease) => lease.username))).toEqual([])
        expect(yield* vault.database.failures).toEqual([])
      })
  )

  it.scoped("renews the lease: a new connection after the first TTL still authenticates as the first user", () =>
    Effect.gen(function*() {
      const env = yield* TestDatabase.TestDatabase
      const vault = yield* startVault(env.server)
      // idle connections close after 20 ms: each query below opens a new connection
      const { sql } = yield* connect(env, vault.address, yield* Effect.scope, Duration.millis(20))
      const [first] = yield* vault.database.leases
      if (first === undefined) return expect.fail("no lease was issued")
      yield* Effect.sleep(Duration.millis(TTL_SECONDS * 1000 + 500))
      const [row] = yield* sql<{ readonly u: string }>`SELECT current_user AS u`
      const now = yield* Clock.currentTimeMillis
      expect(now).toBeGreaterThan(first.issuedAt.getTime() + TTL_SECONDS * 1000)
      expect(row?.u).toBe(first.username)
      const [renewed] = yield* vault.database.leases
      expect(renewed?.renewals).toBeGreaterThanOrEqual(1)
      const requests = yield* vault.requests
      expect(requests.filter((request) => request.url === "/v1/sys/leases/renew").length).toBeGreaterThanOrEqual(1)
      const [validUntil] = yield* env.server.query("SELECT rolvaliduntil::text AS v FROM pg_roles WHERE rolname = $1", [
        first.username
      ]).pipe(Effect.orDie)
      expect(new Date(String(validUntil?.["v"])).getTime()).toBeGreaterThan(first.issuedAt.getTime() + TTL_SECONDS * 1000)
    }))

  it.scoped("revokes its leases when the layer shuts down: the role is dropped at once", () =>
    Effect.gen(function*() {
      const env = yield* TestDatabase.TestDatabase
      const vault = yield* startVault(env.server)
      const scope = yield* Scope.make()
      const { backend, sql } = yield* connect(env, vault.address, scope, Duration.seconds(30))
      const [row] = yield* sql<{ readonly u: string }>`SELECT current_user AS u`
      const credential = yield* Effect.flatMap(
        Effect.fromNullable(backend.databaseCredentials),
        (credentials) => credentials.current
      )
      expect(row?.u).toBe(credential.username)
      // dynamic credentials have leases, not ages: exempt from the credential-age check
      expect(yield* SecretsBackend.describe("DB_PASSWORD").pipe(Effect.provideService(SecretsBackend, backend)))
        .toEqual(Option.none())
      yield* Scope.close(scope, Exit.void)
      const leases = yield* vault.database.leases
      expect(leases.map((lease) => Option.map(lease.ended, (end) => end.by))).toEqual([Option.some("revoke")])
      expect(yield* rolesLeft(env.server, [credential.username])).toEqual([])
      const revokes = (yield* vault.requests).filter((request) => request.url === "/v1/sys/leases/revoke")
      expect(revokes.length).toBe(1)
    }))

  it.scoped("retires connections on the old pair: idle ones at the rollover, a busy one only after its statement", () =>
    Effect.gen(function*() {
      const env = yield* TestDatabase.TestDatabase
      const pairs = [
        { username: "dyn_one", password: "dyn-one-Pw-4c8e2a" },
        { username: "dyn_two", password: "dyn-two-Pw-91b7f3" }
      ] as const
      for (const pair of pairs) yield* env.server.createRole({ name: pair.username, password: pair.password })
      const credential = (index: 0 | 1): DatabaseCredentials.DatabaseCredential => ({
        username: pairs[index].username,
        password: Redacted.make(pairs[index].password),
        generation: index + 1,
        leaseId: `database/creds/app/lease-${index + 1}`,
        expiresAt: new Date(Date.now() + 60_000)
      })
      const ref = yield* SubscriptionRef.make(credential(0))
      const backend: SecretsBackend["Type"] = {
        get: () => Effect.map(SubscriptionRef.get(ref), (pair) => pair.password),
        invalidate: () => Effect.void,
        databaseCredentials: { current: SubscriptionRef.get(ref), changes: ref.changes }
      }
      const settings = makeSettings(env.server, env.pki, { idleTimeout: Duration.seconds(30) })
      const context = yield* Layer.build(
        SecureSqlClient.layer.pipe(Layer.provide(Layer.merge(configLayer(settings), Layer.succeed(SecretsBackend, backend))))
      )
      const sql = Context.get(context, SqlClient.SqlClient)
      const sessionsOf = (user: string) =>
        env.server.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1", [user]).pipe(
          Effect.map((rows) => Number(rows[0]?.["n"] ?? -1)),
          Effect.orDie
        )
      const untilSessions = (user: string, n: number) =>
        sessionsOf(user).pipe(
          Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (count) => count === n }),
          Effect.timeout("10 seconds")
        )
      // three connections on the first pair, idle afterwards
      yield* Effect.all(Array.from({ length: 3 }, () => sql`SELECT pg_sleep(0.2)`), { concurrency: "unbounded" })
      const busy = yield* Effect.fork(sql<{ readonly u: string }>`SELECT current_user AS u, pg_sleep(1.5)::text AS s`)
      yield* untilSessions("dyn_one", 3).pipe(Effect.zipRight(Effect.sleep("300 millis")))
      yield* SubscriptionRef.set(ref, credential(1))
      // the two idle connections close at once; the busy one keeps running its statement
      yield* untilSessions("dyn_one", 1)
      const [row] = yield* Fiber.join(busy)
      expect(row?.u).toBe("dyn_one")
      // released after its statement, it is closed instead of going back to the idle list
      yield* untilSessions("dyn_one", 0)
      const [next] = yield* sql<{ readonly u: string }>`SELECT current_user AS u`
      expect(next?.u).toBe("dyn_two")
    }))
})
