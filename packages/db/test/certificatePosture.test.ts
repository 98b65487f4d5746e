/**
 * The per-connection certificate check (`checkServerIdentity` of the TLS options) on real
 * certificates from the test PKI, read off real TLS handshakes, and its daily expiry re-check on
 * the TestClock. The same rules against a real PostgreSQL are in SecureSqlClient.test.ts.
 */
import { assert, expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as Tls from "node:tls"
import { TestPki } from "@takumi/testing"
import * as CertificatePosture from "../src/internal/certificatePosture.js"
import { makeLogCapture, makeSettings } from "./fixtures.js"

const target = { host: "127.0.0.1", port: 5432 }

class Pki extends Context.Tag("db-test/CertificatePosturePki")<Pki, TestPki.TestPki>() {}

/**
 * The certificate a loopback TLS server presents, as Node's client sees it. Security level 0 on
 * both ends so that OpenSSL builds at level 2 (Node 24) still hand over the 1024-bit certificate.
 */
const lab = "DEFAULT:@SECLEVEL=0"

const peerOf = (files: TestPki.CertificateFiles) =>
  Effect.async<Tls.DetailedPeerCertificate>((resume) => {
    const server = Tls.createServer({ cert: files.certPem, key: files.keyPem, ciphers: lab }, (socket) => socket.end())
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      const socket = Tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ciphers: lab }, () => {
        resume(Effect.succeed(socket.getPeerCertificate(true)))
        socket.destroy()
        server.close()
      })
    })
    return Effect.sync(() => server.close())
  })

const expiring = (lines: ReadonlyArray<{ readonly text: string }>) => lines.filter((l) => l.text.includes("CertificateExpiring"))

layer(Layer.scoped(Pki, Effect.orDie(TestPki.make)), { timeout: 60_000 })("certificatePosture", (it) => {
  it.effect("summarises a certificate: SAN present or not, self-signed, RSA key size", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const server = CertificatePosture.summarize(yield* peerOf(pki.server))
      const cnOnly = CertificatePosture.summarize(yield* peerOf(pki.cnOnly))
      const selfSigned = CertificatePosture.summarize(yield* peerOf(pki.selfSigned))
      const weak = CertificatePosture.summarize(yield* peerOf(pki.rsa1024))
      assert.deepStrictEqual([server.hasSubjectAltName, cnOnly.hasSubjectAltName], [true, false])
      assert.deepStrictEqual(CertificatePosture.findings(server), [])
      assert.deepStrictEqual(CertificatePosture.findings(selfSigned).map((f) => f.rule), ["SelfSignedCertificate"])
      assert.deepStrictEqual(CertificatePosture.findings(weak).map((f) => f.rule), ["WeakRsaKey"])
      // an EC key's `bits` is a curve size, never a weak RSA key
      assert.deepStrictEqual(CertificatePosture.findings({ ...weak, rsaBits: Option.none() }), [])
    }))

  it.scoped("refuses a CN-only, self-signed or weak-key certificate in production; warns once per pool elsewhere", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const production = yield* CertificatePosture.make(makeSettings(target, pki, { environment: "production" }), target)
      const cnOnly = yield* peerOf(pki.cnOnly)
      const refusal = production.checkServerIdentity("localhost", cnOnly)
      assert.strictEqual(refusal !== undefined && "code" in refusal ? refusal.code : undefined, "ERR_TLS_CERT_ALTNAME_INVALID")
      expect(refusal?.message).toContain("no subjectAltName")
      const weak = production.checkServerIdentity("127.0.0.1", yield* peerOf(pki.rsa1024))
      assert.instanceOf(weak, CertificatePosture.CertificatePostureRefused)

      const logs = yield* makeLogCapture
      const development = yield* CertificatePosture.make(makeSettings(target, pki), target).pipe(Effect.provide(logs.layer))
      for (let i = 0; i < 3; i++) assert.isUndefined(development.checkServerIdentity("localhost", cnOnly))
      assert.isUndefined(development.checkServerIdentity("127.0.0.1", yield* peerOf(pki.rsa1024)))
      yield* Effect.yieldNow()
      const warnings = (yield* logs.lines).filter((l) => l.level === "WARN").map((l) => l.text)
      assert.strictEqual(warnings.filter((w) => w.includes("no subjectAltName")).length, 1)
      assert.strictEqual(warnings.filter((w) => w.includes("WeakRsaKey")).length, 1)
      // Node's own identity check still applies: the CN-only certificate does not name an IP address
      assert.isDefined(development.checkServerIdentity("127.0.0.1", cnOnly))
    }))

  it.scoped("raises CertificateExpiringSoon on the daily re-check, with no new connection, once a day (TestClock)", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const peer = yield* peerOf(pki.server)
      yield* TestClock.setTime(Date.now())
      const logs = yield* makeLogCapture
      const posture = yield* CertificatePosture.make(makeSettings(target, pki), target).pipe(Effect.provide(logs.layer))
      assert.isUndefined(posture.checkServerIdentity("127.0.0.1", peer))
      // valid for 365 days; the alert window is 30 days
      yield* TestClock.adjust(Duration.days(334))
      assert.strictEqual(expiring(yield* logs.lines).length, 0)
      yield* TestClock.adjust(Duration.days(1))
      const first = expiring(yield* logs.lines)
      assert.strictEqual(first.length, 1)
      expect(first[0]?.text).toContain("in 29 days")
      yield* TestClock.adjust(Duration.hours(12))
      assert.strictEqual(expiring(yield* logs.lines).length, 1)
      yield* TestClock.adjust(Duration.hours(12))
      assert.strictEqual(expiring(yield* logs.lines).length, 2)
    }))
})
