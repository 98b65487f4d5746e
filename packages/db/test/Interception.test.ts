/**
 * Interception and downgrade (issue #16, item 4): an InterceptionProxy on loopback between the
 * client and a real PostgreSQL 15 terminates the client's TLS with a certificate of its choice, or
 * answers the SSLRequest with `N`, or strips SCRAM-SHA-256-PLUS from the server's offer. What
 * matters is what the attacker obtained: the proxy records every message the client sent, and
 * whether the real server logged the proxy's own connection in.
 */
import { assert, describe, expect, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { DbSettings } from "@takumi/config"
import { InterceptionProxy, TestDatabase } from "@takumi/testing"
import { clientLayer, makeLogCapture, makeSettings, makeTestSecrets, reloadFrom, type TestSecrets, tlsBaseline } from "./fixtures.js"

const APP_PASSWORD = "app-Pa55word-7d03be51"

const database = TestDatabase.layer({ roles: [{ name: "app", password: APP_PASSWORD }], database: "app" })

const configure = reloadFrom(tlsBaseline)

type Certificate = { readonly certPem: string; readonly keyPem: string }

/** The real server behind a proxy; `settings` get the proxy's address and the trusted test CA. */
const intercepted = (
  proxy: (pki: TestDatabase.TestDatabase["Type"]["pki"]) => Omit<InterceptionProxy.Options, "target" | "targetCa">,
  overrides: Parameters<typeof makeSettings>[2] = {}
) =>
  Effect.gen(function*() {
    const { pki, server } = yield* configure()
    const peer = yield* InterceptionProxy.make({
      target: { host: server.host, port: server.port },
      targetCa: pki.ca.certPem,
      ...proxy(pki)
    })
    const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
    const settings = makeSettings(peer, pki, { environment: "production", ...overrides })
    return { peer, secrets, settings }
  })

const terminating = (pick: (pki: TestDatabase.TestDatabase["Type"]["pki"]) => Certificate) =>
(pki: TestDatabase.TestDatabase["Type"]["pki"]): Omit<InterceptionProxy.Options, "target" | "targetCa"> => ({
  clientSide: { _tag: "Terminate", certificate: pick(pki) }
})

/** Terminates TLS with the server's own certificate (the proxy could have copied it) and strips -PLUS. */
const stripping = (pki: TestDatabase.TestDatabase["Type"]["pki"]): Omit<InterceptionProxy.Options, "target" | "targetCa"> => ({
  ...terminating((p) => p.server)(pki),
  stripScramPlus: true
})

/** Builds the layer (startup: pool, one verified connection) and closes it again. */
const startup = (settings: DbSettings, secrets: TestSecrets) => Layer.build(clientLayer(settings, secrets)).pipe(Effect.scoped)

const currentUser = (settings: DbSettings, secrets: TestSecrets) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ usr: string }>`SELECT current_user AS usr`
    return rows[0]?.usr
  }).pipe(Effect.provide(clientLayer(settings, secrets)))

/** Nothing the proxy saw carries the password (in any message, in any connection). */
const passwordNeverSeen = (peer: InterceptionProxy.InterceptionProxy) =>
  Effect.gen(function*() {
    const received = yield* peer.received
    expect(received.filter((m) => m.kind === "PasswordMessage")).toEqual([])
    for (const m of received) expect(Buffer.from(m.body).toString("utf8")).not.toContain(APP_PASSWORD)
    return received
  })

/** The client refused before its StartupMessage: the proxy learnt no user, got no message, no session. */
const refusedAtTls = (peer: InterceptionProxy.InterceptionProxy, secrets: TestSecrets) =>
  Effect.gen(function*() {
    const connections = yield* peer.connections
    expect(connections.length).toBeGreaterThan(0)
    for (const c of connections) {
      assert.strictEqual(c.startup, undefined)
      assert.strictEqual(c.serverAuthenticated, false)
    }
    expect(yield* peer.received).toEqual([])
    assert.strictEqual(yield* secrets.gets, 0)
  })

layer(database, { timeout: 120_000, excludeTestServices: true })("Interception", (it) => {
  describe("a TLS-terminating proxy", () => {
    it.scoped("(a) with a certificate from another CA: CertificateUntrusted, nothing sent", () =>
      Effect.gen(function*() {
        const { peer, secrets, settings } = yield* intercepted(terminating((pki) => pki.unknownCa))
        const error = yield* Effect.flip(startup(settings, secrets))
        assert.strictEqual(error._tag, "CertificateUntrusted", error.message)
        expect((yield* peer.connections).every((c) => c.clientTls)).toBe(true)
        yield* refusedAtTls(peer, secrets)
      }))

    it.scoped("(b) with a certificate from the trusted CA for another host: CertificateHostMismatch, nothing sent", () =>
      Effect.gen(function*() {
        const { peer, secrets, settings } = yield* intercepted(terminating((pki) => pki.wrongHost))
        const error = yield* Effect.flip(startup(settings, secrets))
        assert.strictEqual(error._tag, "CertificateHostMismatch", error.message)
        yield* refusedAtTls(peer, secrets)
      }))

    for (const channelBinding of ["require", "prefer"] as const) {
      it.scoped(`(c) with a trusted certificate for the right host, DB_CHANNEL_BINDING=${channelBinding}: ChannelBindingFailed, the server refuses the proof the proxy relays`, () =>
        Effect.gen(function*() {
          const { peer, secrets, settings } = yield* intercepted(terminating((pki) => pki.interceptor), {
            auth: { channelBinding, requireAuth: ["scram-sha-256", "none"] }
          })
          const error = yield* Effect.flip(startup(settings, secrets))
          assert.strictEqual(error._tag, "ChannelBindingFailed", error.message)
          expect(error.message).not.toContain(APP_PASSWORD)
          const connections = yield* peer.connections
          expect(connections.length).toBeGreaterThan(0)
          for (const c of connections) {
            // the proxy passed the full -PLUS offer on, and relayed the client's proof to the real server …
            expect(c.serverOffered).toEqual(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
            // … which refused it: the proof is bound to the proxy's certificate, not the server's
            assert.strictEqual(c.serverAuthenticated, false)
            expect(c.serverError).toMatch(/SCRAM channel binding check failed/)
          }
          const received = yield* passwordNeverSeen(peer)
          expect(received.filter((m) => m.kind === "SASLInitialResponse").every((m) =>
            Buffer.from(m.body).toString("utf8").includes("p=tls-server-end-point,,")
          )).toBe(true)
        }))
    }

    it.scoped("(c) without channel binding (development, DB_CHANNEL_BINDING=disable) the same proxy does get a session: what binding prevents", () =>
      Effect.gen(function*() {
        const { peer, secrets, settings } = yield* intercepted(terminating((pki) => pki.interceptor), {
          environment: "development",
          auth: { channelBinding: "disable", requireAuth: ["scram-sha-256", "none"] }
        })
        assert.strictEqual(yield* currentUser(settings, secrets), "app")
        const connections = yield* peer.connections
        expect(connections.length).toBeGreaterThan(0)
        expect(connections.every((c) => c.clientTls && c.serverAuthenticated)).toBe(true)
      }))
  })

  describe("downgrades", () => {
    it.scoped("a proxy answering the SSLRequest with N: SslNotSupportedByServer and the UnencryptedConnection alert, nothing sent in plaintext", () =>
      Effect.gen(function*() {
        const { peer, secrets, settings } = yield* intercepted(() => ({ clientSide: { _tag: "RefuseTls" } }))
        const logs = yield* makeLogCapture
        const error = yield* Effect.flip(startup(settings, secrets).pipe(Effect.provide(logs.layer)))
        assert.strictEqual(error._tag, "SslNotSupportedByServer", error.message)
        yield* refusedAtTls(peer, secrets)
        const alerts = (yield* logs.lines).filter((l) => l.level === "WARN" && l.text.includes("UnencryptedConnection"))
        expect(alerts.length).toBeGreaterThan(0)
        expect(alerts[0]?.text).toContain("check for a proxy downgrading the connection")
      }))

    it.scoped("a proxy stripping SCRAM-SHA-256-PLUS, DB_CHANNEL_BINDING=require: AuthenticationMethodRefused, nothing sent", () =>
      Effect.gen(function*() {
        const { peer, secrets, settings } = yield* intercepted(stripping, {
          auth: { channelBinding: "require", requireAuth: ["scram-sha-256", "none"] }
        })
        const error = yield* Effect.flip(startup(settings, secrets))
        if (error._tag !== "AuthenticationMethodRefused") return assert.fail(`expected AuthenticationMethodRefused: ${error.message}`)
        assert.strictEqual(error.rule, "ChannelBindingRequired")
        expect(error.offered).toEqual(["SCRAM-SHA-256"])
        expect((yield* peer.connections).map((c) => c.serverOffered)).toEqual([["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]])
        expect(yield* peer.received).toEqual([])
        assert.strictEqual(yield* secrets.gets, 0)
      }))

    it.scoped("a proxy stripping SCRAM-SHA-256-PLUS, production defaults (prefer): the server sees the downgrade, ChannelBindingFailed before any proof", () =>
      Effect.gen(function*() {
        const { peer, secrets, settings } = yield* intercepted(stripping)
        const error = yield* Effect.flip(startup(settings, secrets))
        assert.strictEqual(error._tag, "ChannelBindingFailed", error.message)
        const connections = yield* peer.connections
        expect(connections.length).toBeGreaterThan(0)
        for (const c of connections) {
          assert.strictEqual(c.serverAuthenticated, false)
          expect(c.serverError).toMatch(/SCRAM channel binding negotiation error/)
        }
        const received = yield* passwordNeverSeen(peer)
        // the client said "I bind, but you did not offer it" (gs2 header y): no client-final, no proof
        expect(received.map((m) => m.kind).every((k) => k === "SASLInitialResponse")).toBe(true)
        expect(received.every((m) => Buffer.from(m.body).toString("utf8").includes("y,,n=*"))).toBe(true)
      }))
  })
})
