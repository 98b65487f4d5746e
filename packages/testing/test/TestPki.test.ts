import { describe, expect, it, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import { TestPki } from "@takumi/testing"

const DAY = 24 * 60 * 60 * 1000

const parse = (files: TestPki.CertificateFiles) => new Crypto.X509Certificate(files.certPem)

// One PKI for the read-only checks: key generation is the expensive part.
class Pki extends Context.Tag("test/TestPki/Pki")<Pki, TestPki.TestPki>() {}
const PkiLive = Layer.scoped(Pki, TestPki.make)

layer(PkiLive)("TestPki", (it) => {
  it.effect("signs the server certificate with the CA for localhost and 127.0.0.1", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const server = parse(pki.server)
      const ca = parse(pki.ca)
      expect(server.verify(ca.publicKey)).toBe(true)
      expect(server.checkHost("localhost")).toBe("localhost")
      expect(server.checkIP("127.0.0.1")).toBe("127.0.0.1")
      expect(ca.ca).toBe(true)
      expect(server.ca).toBe(false)
      expect(Crypto.createPrivateKey(pki.server.keyPem).asymmetricKeyDetails?.modulusLength).toBe(2048)
      expect(server.checkPrivateKey(Crypto.createPrivateKey(pki.server.keyPem))).toBe(true)
    }))

  it.effect("writes PEM files that end with a newline and keys readable only by their owner", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      for (const files of [pki.ca, pki.server, pki.expired, pki.rsa1024, pki.unknownCaRoot]) {
        expect(files.certPem.endsWith("-----END CERTIFICATE-----\n")).toBe(true)
        expect(files.keyPem.startsWith("-----BEGIN PRIVATE KEY-----")).toBe(true)
        expect(files.keyPem.endsWith("-----END PRIVATE KEY-----\n")).toBe(true)
        expect(Fs.readFileSync(files.certPath, "utf8")).toBe(files.certPem)
        expect(Fs.readFileSync(files.keyPath, "utf8")).toBe(files.keyPem)
        expect(Fs.statSync(files.keyPath).mode & 0o777).toBe(0o600)
      }
    }))

  it.effect("gives the rsa1024 certificate a 1024-bit RSA key signed by the CA", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const cert = parse(pki.rsa1024)
      expect(cert.publicKey.asymmetricKeyType).toBe("rsa")
      expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(1024)
      expect(cert.verify(parse(pki.ca).publicKey)).toBe(true)
      expect(cert.checkHost("localhost")).toBe("localhost")
    }))

  it.effect("gives the interceptor a valid certificate of the CA for the right host that is not the server's", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const interceptor = parse(pki.interceptor)
      expect(interceptor.verify(parse(pki.ca).publicKey)).toBe(true)
      expect(interceptor.checkHost("localhost")).toBe("localhost")
      expect(interceptor.checkIP("127.0.0.1")).toBe("127.0.0.1")
      expect(Date.parse(interceptor.validTo)).toBeGreaterThan(Date.now() + 300 * DAY)
      // what channel binding hashes (tls-server-end-point) differs from the server's
      expect(interceptor.fingerprint256).not.toBe(parse(pki.server).fingerprint256)
      expect(interceptor.checkPrivateKey(Crypto.createPrivateKey(pki.interceptor.keyPem))).toBe(true)
    }))

  it.effect("makes expiringSoon expire ten days from now", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const notAfter = Date.parse(parse(pki.expiringSoon).validTo)
      const days = (notAfter - Date.now()) / DAY
      expect(days).toBeGreaterThan(9.9)
      expect(days).toBeLessThanOrEqual(10)
      expect(parse(pki.expiringSoon).verify(parse(pki.ca).publicKey)).toBe(true)
    }))

  it.effect("breaks each broken certificate in exactly its own way", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const caKey = parse(pki.ca).publicKey
      const now = Date.now()
      const expired = parse(pki.expired)
      expect(Date.parse(expired.validTo)).toBeLessThan(now)
      expect(expired.verify(caKey)).toBe(true)
      const notYetValid = parse(pki.notYetValid)
      expect(Date.parse(notYetValid.validFrom)).toBeGreaterThan(now)
      const wrongHost = parse(pki.wrongHost)
      expect(wrongHost.checkHost("localhost")).toBeUndefined()
      expect(wrongHost.checkIP("127.0.0.1")).toBeUndefined()
      expect(wrongHost.checkHost("wrong.example.com")).toBe("wrong.example.com")
      const unknownCa = parse(pki.unknownCa)
      expect(unknownCa.verify(caKey)).toBe(false)
      expect(unknownCa.verify(parse(pki.unknownCaRoot).publicKey)).toBe(true)
      expect(unknownCa.checkHost("localhost")).toBe("localhost")
      const selfSigned = parse(pki.selfSigned)
      expect(selfSigned.verify(selfSigned.publicKey)).toBe(true)
      expect(selfSigned.ca).toBe(false)
      expect(selfSigned.subject).toBe(selfSigned.issuer)
    }))

  it.effect("issues client certificates with CN = role for client authentication", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const files = yield* pki.client("app_user")
      const cert = parse(files)
      expect(cert.subject).toBe("CN=app_user")
      expect(cert.keyUsage).toContain("1.3.6.1.5.5.7.3.2")
      expect(cert.verify(parse(pki.ca).publicKey)).toBe(true)
      expect(Fs.statSync(files.keyPath).mode & 0o777).toBe(0o600)
    }))

})

describe("TestPki scope", () => {
  it.effect("removes its directory when the scope closes", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.scoped(Effect.map(TestPki.make, (pki) => pki.dir))
      expect(Fs.existsSync(dir)).toBe(false)
    }))
})
