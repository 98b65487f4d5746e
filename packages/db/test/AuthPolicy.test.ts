/**
 * DB_REQUIRE_AUTH and DB_CHANNEL_BINDING (libpq's `require_auth` and `channel_binding`): against
 * an impostor that holds a certificate the client trusts (HostilePgServer with the test PKI's
 * server certificate) and against a real PostgreSQL 15. What matters is what left the process:
 * the impostor records every message, and the secrets backend counts every read of the password.
 */
import { assert, describe, expect, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Crypto from "node:crypto"
import { inspect } from "node:util"
import * as Pg from "pg"
import type { DbSettings } from "@takumi/config"
import { HostilePgServer, PgTestServer, TestDatabase } from "@takumi/testing"
import * as AuthPolicy from "../src/internal/authPolicy.js"
import type { Credentials } from "../src/internal/credentials.js"
import { acquireClient, makePool, openFreshClient, targetOf } from "../src/internal/pool.js"
import { clientLayer, type TestSecrets, makeTestSecrets, makeLogCapture, makeSettings, reloadFrom, tlsBaseline } from "./fixtures.js"

const APP_PASSWORD = "app-Pa55word-c41e7b90"
const LEGACY_PASSWORD = "legacy-Pa55word-93fd02a6"

const database = TestDatabase.layer({
  roles: [
    { name: "app", password: APP_PASSWORD },
    { name: "legacy", password: LEGACY_PASSWORD }
  ],
  database: "app"
})

const configure = reloadFrom(tlsBaseline)

/** Builds the layer (startup: pool, one verified connection) and closes it again. */
const startup = (settings: DbSettings, secrets: TestSecrets) => Layer.build(clientLayer(settings, secrets)).pipe(Effect.scoped)

/** An impostor presenting the test PKI's server certificate (it chains to the CA the client trusts). */
const impostor = (request: HostilePgServer.AuthenticationRequest, afterResponse?: HostilePgServer.AfterResponse) =>
  Effect.gen(function*() {
    const { pki } = yield* TestDatabase.TestDatabase
    const peer = yield* HostilePgServer.make({
      request,
      certificate: pki.server,
      ...(afterResponse === undefined ? {} : { afterResponse })
    }).pipe(Effect.orDie)
    return { pki, peer }
  })

/** Production settings against `peer` (requireAuth scram-sha-256,none and channel binding prefer unless overridden). */
const productionAt = (
  peer: { readonly host: string; readonly port: number },
  pki: Context.Tag.Service<TestDatabase.TestDatabase>["pki"],
  overrides: Parameters<typeof makeSettings>[2] = {}
) => makeSettings(peer, pki, { environment: "production", ...overrides })

/** Starts up against `settings` and returns the startup error, which must be AuthenticationMethodRefused. */
const refusal = (settings: DbSettings, secrets: TestSecrets) =>
  Effect.gen(function*() {
    const error = yield* Effect.flip(startup(settings, secrets))
    if (error._tag !== "AuthenticationMethodRefused") return assert.fail(`expected AuthenticationMethodRefused: ${error.message}`)
    // the message names the fix, never the password
    expect(error.message).not.toContain(APP_PASSWORD)
    expect(inspect(error, { depth: 10 })).not.toContain(APP_PASSWORD)
    return error
  })

const md5Secret = (password: string, user: string) =>
  `md5${Crypto.createHash("md5").update(password + user).digest("hex")}`

layer(database, { timeout: 120_000, excludeTestServices: true })("AuthPolicy", (it) => {
  describe("pg internals it depends on", () => {
    it("pg 8 still has the handlers the policy overrides (a rename would let pg answer by itself)", () => {
      for (const name of AuthPolicy.pgHandlers) {
        assert.strictEqual(typeof Reflect.get(Pg.Client.prototype, name), "function", `pg.Client.prototype.${name}`)
      }
    })
  })

  describe("an impostor in production", () => {
    it.scoped("refuses a cleartext password request before reading the password, and sends nothing", () =>
      Effect.gen(function*() {
        const { peer, pki } = yield* impostor("cleartext")
        const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
        const error = yield* refusal(productionAt(peer, pki), secrets)
        assert.strictEqual(error.method, "password")
        assert.strictEqual(error.rule, "MethodNotAllowed")
        expect(error.message).toContain("password_encryption = 'scram-sha-256'")
        expect(yield* peer.received).toEqual([])
        assert.strictEqual(yield* secrets.gets, 0)
        // it did get as far as asking: TLS passed and the startup message arrived
        expect((yield* peer.connections).map((c) => c.tls)).toEqual([true])
      }))

    it.scoped("refuses an MD5 password request before reading the password, and sends nothing", () =>
      Effect.gen(function*() {
        const { peer, pki } = yield* impostor("md5")
        const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
        const error = yield* refusal(productionAt(peer, pki), secrets)
        assert.strictEqual(error.method, "md5")
        assert.strictEqual(error.rule, "MethodNotAllowed")
        expect(yield* peer.received).toEqual([])
        assert.strictEqual(yield* secrets.gets, 0)
      }))

    it.scoped("refuses SCRAM without -PLUS when channel binding is required, and sends nothing", () =>
      Effect.gen(function*() {
        const { peer, pki } = yield* impostor("scram-sha-256")
        const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
        const error = yield* refusal(productionAt(peer, pki, { auth: { channelBinding: "require", requireAuth: ["scram-sha-256", "none"] } }), secrets)
        assert.strictEqual(error.method, "scram-sha-256")
        assert.strictEqual(error.rule, "ChannelBindingRequired")
        expect(error.offered).toEqual(["SCRAM-SHA-256"])
        expect(error.message).toContain("DB_CHANNEL_BINDING=prefer")
        expect(yield* peer.received).toEqual([])
        assert.strictEqual(yield* secrets.gets, 0)
      }))

    it.scoped("refuses SCRAM-SHA-256-PLUS over a connection without TLS when channel binding is required", () =>
      Effect.gen(function*() {
        const { peer, pki } = yield* impostor("scram-sha-256-plus")
        const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
        const settings = productionAt(peer, pki, {
          auth: { channelBinding: "require", requireAuth: ["scram-sha-256", "none"] },
          tls: { enabled: false }
        })
        const error = yield* refusal(settings, secrets)
        assert.strictEqual(error.rule, "ChannelBindingRequired")
        expect((yield* peer.connections).map((c) => c.tls)).toEqual([false])
        expect(yield* peer.received).toEqual([])
        assert.strictEqual(yield* secrets.gets, 0)
      }))

    it.scoped("answers a SCRAM-SHA-256-PLUS offer with SCRAM-SHA-256-PLUS bound to the TLS certificate (channel binding prefer)", () =>
      Effect.gen(function*() {
        const { peer, pki } = yield* impostor("scram-sha-256-plus")
        const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
        // the impostor cannot finish SCRAM: it answers the first message with 28P01
        const error = yield* Effect.flip(startup(productionAt(peer, pki), secrets))
        assert.strictEqual(error._tag, "AuthenticationFailed")
        const initial = (yield* peer.received).filter((m) => m.kind === "SASLInitialResponse")
        expect(initial.length).toBeGreaterThan(0)
        for (const message of initial) {
          assert.strictEqual(message.mechanism, "SCRAM-SHA-256-PLUS")
          // gs2 header: channel binding of type tls-server-end-point
          expect(Buffer.from(message.body).toString("utf8")).toContain("p=tls-server-end-point,,")
        }
      }))

    it.scoped("refuses a server that lets the client in without a password when DB_REQUIRE_AUTH lacks none", () =>
      Effect.gen(function*() {
        const { peer, pki } = yield* impostor("none")
        const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
        const error = yield* refusal(productionAt(peer, pki, { auth: { channelBinding: "prefer", requireAuth: ["scram-sha-256"] } }), secrets)
        assert.strictEqual(error.method, "none")
        assert.strictEqual(error.rule, "MethodNotAllowed")
        // no statement was sent: the connection never counted as open
        expect(yield* peer.received).toEqual([])
      }))

    it.scoped("refuses a server that declares SCRAM done before proving it knows the verifier", () =>
      Effect.gen(function*() {
        const { peer, pki } = yield* impostor("scram-sha-256-plus", "accept")
        const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
        const error = yield* refusal(productionAt(peer, pki, { auth: { channelBinding: "prefer", requireAuth: ["scram-sha-256"] } }), secrets)
        assert.strictEqual(error.method, "scram-sha-256")
        assert.strictEqual(error.rule, "AuthenticationIncomplete")
        // only the client-first message (no proof, nothing derived from the password) went out
        expect((yield* peer.received).map((m) => m.kind)).toEqual(["SASLInitialResponse"])
      }))

    it.scoped("with channel binding required, refuses a server that skips SCRAM even though none is allowed", () =>
      Effect.gen(function*() {
        const { peer, pki } = yield* impostor("scram-sha-256-plus", "accept")
        const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
        const settings = productionAt(peer, pki, { auth: { channelBinding: "require", requireAuth: ["scram-sha-256", "none"] } })
        const error = yield* refusal(settings, secrets)
        assert.strictEqual(error.rule, "ChannelBindingRequired")
        assert.strictEqual(error.method, "scram-sha-256")
      }))
  })

  describe("a request pg cannot parse", () => {
    it.scoped("turns AuthenticationGSS (code 7), which pg's parser throws on inside a socket handler, into AuthenticationMethodRefused instead of a crash", () =>
      Effect.gen(function*() {
        const { peer, pki } = yield* impostor("gss")
        const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
        const error = yield* refusal(productionAt(peer, pki), secrets)
        assert.strictEqual(error.method, "unsupported")
        assert.strictEqual(error.requestCode, 7)
        expect(error.message).toContain("code 7")
        expect(yield* peer.received).toEqual([])
        assert.strictEqual(yield* secrets.gets, 0)
      }))
  })

  describe("every connection path", () => {
    it.scoped("applies the policy to the pool's connections and to the probes' fresh clients alike", () =>
      Effect.gen(function*() {
        const { peer, pki } = yield* impostor("cleartext")
        let passwordCalls = 0
        const credentials: Credentials = {
          password: () => {
            passwordCalls++
            return Promise.resolve(APP_PASSWORD)
          },
          invalidate: () => Promise.resolve(),
          choice: () => 0,
          usePending: () => Promise.resolve(false),
          lastPasswordWasWellKnown: () => undefined
        }
        const settings = productionAt(peer, pki, { tls: { enabled: false } })
        const options = { settings, host: peer.host, port: peer.port, ssl: false as const, credentials }
        const pool = yield* makePool(options)
        const target = targetOf(options)
        const pooled = yield* Effect.flip(Effect.scoped(acquireClient(pool.connect.bind(pool), target)))
        const fresh = yield* Effect.flip(Effect.scoped(openFreshClient(pool, target)))
        expect([pooled._tag, fresh._tag]).toEqual(["AuthenticationMethodRefused", "AuthenticationMethodRefused"])
        expect((yield* peer.connections).length).toBe(2)
        expect(yield* peer.received).toEqual([])
        assert.strictEqual(passwordCalls, 0)
      }))

    it.scoped("fails startup when the read replica is an impostor asking for cleartext (the primary is fine)", () =>
      Effect.gen(function*() {
        const { server } = yield* configure()
        const { peer, pki } = yield* impostor("cleartext")
        const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
        const settings = makeSettings(server, pki, {
          environment: "production",
          readReplica: Option.some({ host: peer.host, port: peer.port })
        })
        const error = yield* refusal(settings, secrets)
        assert.strictEqual(error.port, peer.port)
        assert.strictEqual(error.method, "password")
        expect(yield* peer.received).toEqual([])
      }))
  })

  describe("development", () => {
    it.scoped("answers a cleartext request (DB_REQUIRE_AUTH allows it) and warns once per pool, not per connection", () =>
      Effect.gen(function*() {
        const { peer, pki } = yield* impostor("cleartext")
        const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
        const logs = yield* makeLogCapture
        const error = yield* Effect.flip(startup(makeSettings(peer, pki), secrets)).pipe(Effect.provide(logs.layer))
        // the impostor refuses every password; the pool re-reads the secret and tries once more
        assert.strictEqual(error._tag, "AuthenticationFailed")
        const passwords = (yield* peer.received).filter((m) => m.kind === "PasswordMessage")
        expect(passwords.map((m) => Buffer.from(m.body).toString("utf8"))).toEqual([`${APP_PASSWORD}\0`, `${APP_PASSWORD}\0`])
        expect(new Set(passwords.map((m) => m.connection)).size).toBe(2)
        const warnings = (yield* logs.lines).filter((l) => l.level === "WARN" && l.text.includes("cleartext"))
        assert.strictEqual(warnings.length, 1)
        expect(warnings[0]?.text).toContain("password_encryption = 'scram-sha-256'")
        expect(warnings[0]?.text).not.toContain(APP_PASSWORD)
      }))
  })

  describe("a real PostgreSQL", () => {
    it.scoped("connects with the production defaults and channel binding required (PostgreSQL offers -PLUS over TLS)", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure()
        const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
        const settings = makeSettings(server, pki, {
          environment: "production",
          auth: { channelBinding: "require", requireAuth: ["scram-sha-256", "none"] }
        })
        const user = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql<{ usr: string }>`SELECT current_user AS usr`
          return rows[0]?.usr
        }).pipe(Effect.provide(clientLayer(settings, secrets)))
        assert.strictEqual(user, "app")
      }))

    it.scoped("refuses a role the server authenticates with md5 in production", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({
          hba: [{ type: "hostssl", user: "legacy", method: "md5" }, ...PgTestServer.defaultHba(true)]
        })
        // stored as an MD5 hash: with a SCRAM secret PostgreSQL would run SCRAM despite pg_hba's md5
        yield* server.query(`ALTER ROLE legacy PASSWORD '${md5Secret(LEGACY_PASSWORD, "legacy")}'`).pipe(Effect.orDie)
        const secrets = yield* makeTestSecrets({ DB_PASSWORD: LEGACY_PASSWORD })
        const settings = makeSettings(server, pki, { environment: "production", user: "legacy" })
        const error = yield* Effect.flip(startup(settings, secrets))
        assert.strictEqual(error._tag, "AuthenticationMethodRefused", error.message)
        if (error._tag === "AuthenticationMethodRefused") assert.strictEqual(error.method, "md5")
        expect(error.message).not.toContain(LEGACY_PASSWORD)
        assert.strictEqual(yield* secrets.gets, 0)
      }))

    it.scoped("connects the same md5 role in development, with one warning naming md5", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({
          hba: [{ type: "hostssl", user: "legacy", method: "md5" }, ...PgTestServer.defaultHba(true)]
        })
        yield* server.query(`ALTER ROLE legacy PASSWORD '${md5Secret(LEGACY_PASSWORD, "legacy")}'`).pipe(Effect.orDie)
        const secrets = yield* makeTestSecrets({ DB_PASSWORD: LEGACY_PASSWORD })
        const logs = yield* makeLogCapture
        const settings = makeSettings(server, pki, { user: "legacy" })
        const users = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          // several connections of one pool at once: still one warning
          return yield* Effect.all(
            [1, 2, 3].map(() => sql<{ usr: string }>`SELECT current_user AS usr, pg_sleep(0.05)`),
            { concurrency: "unbounded" }
          )
        }).pipe(Effect.provide(clientLayer(settings, secrets)), Effect.provide(logs.layer))
        expect(users.map((rows) => rows[0]?.usr)).toEqual(["legacy", "legacy", "legacy"])
        const warnings = (yield* logs.lines).filter((l) => l.level === "WARN" && l.text.includes("(md5)"))
        assert.strictEqual(warnings.length, 1)
      }))
  })
})
