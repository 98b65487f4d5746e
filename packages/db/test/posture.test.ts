/**
 * The posture rules as pure functions: combinations a real server cannot produce against this
 * client (it never offers TLS < 1.2 by default nor a weak cipher) and the expiry alert on the
 * TestClock. The real-server cases are in SecureSqlClient.test.ts.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { enforce, findings, type Posture } from "../src/internal/posture.js"
import { type LogLine, makeLogCapture, makeSettings } from "./fixtures.js"

const target = { host: "db.example.com", port: 5432, user: "app", database: "app", connectTimeoutMillis: 2000, poolMax: 4 }

const caOnly = { ca: { certPath: "/nonexistent/ca.pem" } }

const healthy = (validTo: Date): Posture => ({
  socket: Option.some({
    protocol: "TLSv1.3",
    cipher: "TLS_AES_256_GCM_SHA384",
    certificate: Option.some({
      subject: "CN=db.example.com",
      selfSigned: false,
      rsaBits: Option.some(2048),
      validTo: Option.some(validTo)
    })
  }),
  server: { ssl: true, version: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384", superuser: false },
  wellKnownPassword: false
})

describe("posture", () => {
  it("finds nothing in a healthy TLS 1.3 posture", () => {
    assert.deepStrictEqual(findings(healthy(new Date(Date.UTC(2030, 0, 1)))), [])
  })

  it("reports an old protocol and a weak cipher seen on the socket or in pg_stat_ssl", () => {
    const base = healthy(new Date(Date.UTC(2030, 0, 1)))
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

  it("does not count an EC certificate's curve size as a weak RSA key", () => {
    const base = healthy(new Date(Date.UTC(2030, 0, 1)))
    const ec: Posture = {
      ...base,
      socket: Option.map(base.socket, (s) => ({
        ...s,
        certificate: Option.map(s.certificate, (c) => ({ ...c, rsaBits: Option.none() }))
      }))
    }
    assert.deepStrictEqual(findings(ec), [])
  })

  it.effect("raises the expiry alert only once the certificate is within the window (TestClock)", () =>
    Effect.gen(function*() {
      const settings = makeSettings({ host: target.host, port: target.port }, caOnly)
      const posture = healthy(new Date(Duration.toMillis(Duration.days(100))))
      const alerts = (logs: ReadonlyArray<LogLine>) => logs.filter((l) => l.text.includes("CertificateExpiring"))

      const before = yield* makeLogCapture
      yield* enforce(posture, settings, target).pipe(Effect.provide(before.layer))
      assert.strictEqual(alerts(yield* before.lines).length, 0)

      yield* TestClock.adjust(Duration.days(71))
      const after = yield* makeLogCapture
      yield* enforce(posture, settings, target).pipe(Effect.provide(after.layer))
      const raised = alerts(yield* after.lines)
      assert.strictEqual(raised.length, 1)
      expect(raised[0]?.text).toContain("in 29 days")
    }))

  it.effect("refuses in production with every finding, and only warns in development", () =>
    Effect.gen(function*() {
      const base = healthy(new Date(Date.UTC(2030, 0, 1)))
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
