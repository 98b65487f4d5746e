/**
 * The startup posture rules as pure functions: combinations a real server cannot produce against
 * this client (it never offers TLS < 1.2 by default nor a weak cipher). The certificate rules are
 * in certificatePosture.test.ts, the real-server cases in SecureSqlClient.test.ts.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { enforce, findings, type Posture } from "../src/internal/posture.js"
import { decode } from "../src/internal/rolePrivileges.js"
import { makeLogCapture, makeSettings } from "./fixtures.js"

const target = { host: "db.example.com", port: 5432, user: "app", database: "app", connectTimeoutMillis: 2000, poolMax: 4 }

const caOnly = { ca: { certPath: "/nonexistent/ca.pem" } }

const healthy = (): Posture => ({
  socket: Option.some({ protocol: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384" }),
  server: { ssl: true, version: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384", superuser: false, privileges: decode(undefined) },
  wellKnownPassword: false
})

describe("posture", () => {
  it("finds nothing in a healthy TLS 1.3 posture", () => {
    assert.deepStrictEqual(findings(healthy()), [])
  })

  it("reports an old protocol and a weak cipher seen on the socket or in pg_stat_ssl", () => {
    const base = healthy()
    const old: Posture = {
      ...base,
      socket: Option.map(base.socket, (s) => ({ ...s, protocol: "TLSv1.1", cipher: "AES256-SHA" })),
      server: { ...base.server, version: "TLSv1.1", cipher: "AES256-SHA" }
    }
    const rules = findings(old).map((f) => [f.rule, f.detail])
    assert.deepStrictEqual(rules, [
      ["ProtocolTooOld", "negotiated TLSv1.1"],
      ["WeakCipher", "negotiated cipher AES256-SHA"]
    ])
  })

  it.effect("refuses in production with every finding, and only warns in development", () =>
    Effect.gen(function*() {
      const base = healthy()
      const bad: Posture = { ...base, server: { ...base.server, superuser: true }, wellKnownPassword: true }
      const production = makeSettings({ host: target.host, port: target.port }, caOnly, { environment: "production" })
      const error = yield* Effect.flip(enforce(bad, production, target))
      assert.deepStrictEqual(error.findings.map((f) => f.rule), ["SuperuserRole", "DefaultPassword"])
      expect(error.message).toContain("least-privilege role")
      const development = makeSettings({ host: target.host, port: target.port }, caOnly)
      const logs = yield* makeLogCapture
      yield* enforce(bad, development, target).pipe(Effect.provide(logs.layer))
      assert.strictEqual((yield* logs.lines).filter((l) => l.level === "WARN").length, 2)
    }))
})
