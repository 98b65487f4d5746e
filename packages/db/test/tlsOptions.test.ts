/**
 * The TLS options SecureSqlClient hands to `pg`: built from the settings only, with real
 * certificate files from the test PKI.
 */
import { assert, expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import * as Tls from "node:tls"
import { inspect } from "node:util"
import type { DbSettings } from "@takumi/config"
import { TestPki } from "@takumi/testing"
import { cipherList, isStrongCipher, makeTlsOptions, tls12Ciphers } from "../src/internal/tlsOptions.js"
import { file, makeSettings } from "./fixtures.js"

const local = { host: "127.0.0.1", port: 5432 }

class Pki extends Context.Tag("db-test/Pki")<Pki, TestPki.TestPki>() {}

layer(Layer.scoped(Pki, Effect.orDie(TestPki.make)), { timeout: 60_000 })("tlsOptions", (it) => {
  /** A TLS handshake of `options` against a loopback TLS server: what was negotiated, or the error code. */
  const handshake = (options: Tls.ConnectionOptions, server: Tls.TlsOptions) =>
    Effect.async<{ readonly protocol: string | null; readonly cipher: string; readonly peer: string } | string>(
      (resume) => {
        const listener = Tls.createServer(server, (socket) => {
          const peer = socket.getPeerCertificate()
          socket.end(typeof peer.subject?.CN === "string" ? peer.subject.CN : "")
        })
        listener.on("tlsClientError", () => undefined)
        listener.listen(0, "127.0.0.1", () => {
          const address = listener.address()
          const port = typeof address === "object" && address !== null ? address.port : 0
          const socket = Tls.connect({ ...options, host: "127.0.0.1", port })
          let peer = ""
          socket.on("data", (chunk: Buffer) => {
            peer += chunk.toString()
          })
          socket.on("end", () => {
            resume(Effect.succeed({ protocol: socket.getProtocol(), cipher: socket.getCipher().name, peer }))
            listener.close()
          })
          socket.on("error", (error: NodeJS.ErrnoException) => {
            resume(Effect.succeed(error.code ?? error.message))
            listener.close()
          })
        })
        return Effect.sync(() => listener.close())
      }
    )

  const serverOf = (pki: TestPki.TestPki, extra: Tls.TlsOptions = {}): Tls.TlsOptions => ({
    cert: pki.server.certPem,
    key: pki.server.keyPem,
    ...extra
  })

  it.scoped("returns false when TLS is disabled, so that PGSSLMODE cannot switch it on", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const options = yield* makeTlsOptions(makeSettings(local, pki, { tls: { enabled: false } }), local)
      assert.strictEqual(options, false)
    }))

  it.scoped("puts CA, certificate, key, version and ciphers into one secure context: none of them is an option of its own", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const options = yield* makeTlsOptions(makeSettings(local, pki), local)
      if (options === false) return assert.fail("TLS options expected")
      assert.deepStrictEqual(Object.keys(options).sort(), ["checkServerIdentity", "rejectUnauthorized", "secureContext"])
      assert.strictEqual(options.rejectUnauthorized, true)
      const result = yield* handshake(options, serverOf(pki))
      assert.deepStrictEqual(typeof result === "string" ? result : result.protocol, "TLSv1.3")
    }))

  it.scoped("trusts only DB_SSL_CA: a server from another CA fails verification", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const options = yield* makeTlsOptions(makeSettings(local, pki), local)
      if (options === false) return assert.fail("TLS options expected")
      const result = yield* handshake(options, { cert: pki.unknownCa.certPem, key: pki.unknownCa.keyPem })
      assert.strictEqual(result, "UNABLE_TO_VERIFY_LEAF_SIGNATURE")
    }))

  it.scoped("enforces DB_SSL_MIN_VERSION and the strong cipher set in the handshake", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const tls13 = yield* makeTlsOptions(makeSettings(local, pki, { tls: { minVersion: "TLSv1.3" } }), local)
      const tls12 = yield* makeTlsOptions(makeSettings(local, pki), local)
      if (tls13 === false || tls12 === false) return assert.fail("TLS options expected")
      const onlyTls12 = yield* handshake(tls13, serverOf(pki, { maxVersion: "TLSv1.2" }))
      assert.isString(onlyTls12)
      const weakOnly = yield* handshake(tls12, serverOf(pki, { maxVersion: "TLSv1.2", ciphers: "AES256-SHA" }))
      assert.isString(weakOnly)
      const strong = yield* handshake(tls12, serverOf(pki, { maxVersion: "TLSv1.2" }))
      if (typeof strong === "string") return assert.fail(strong)
      assert.isTrue(isStrongCipher(strong.cipher), strong.cipher)
      for (const cipher of tls12Ciphers) expect(cipher).toMatch(/^ECDHE-(RSA|ECDSA)-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)$/)
      Tls.createSecureContext({ ciphers: cipherList })
    }))

  it("classifies cipher names into the strong set", () => {
    assert.isTrue(isStrongCipher("TLS_AES_256_GCM_SHA384"))
    assert.isTrue(isStrongCipher("ECDHE-RSA-CHACHA20-POLY1305"))
    assert.isFalse(isStrongCipher("AES256-SHA"))
    assert.isFalse(isStrongCipher("ECDHE-RSA-AES256-SHA384"))
  })

  it.scoped("sets the server name for a DNS host and never for an IP address", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const dnsHost = { host: "db.example.com", port: 5432 }
      const dns = yield* makeTlsOptions(makeSettings(dnsHost, pki), dnsHost)
      const ip = yield* makeTlsOptions(makeSettings(local, pki), local)
      assert.strictEqual(dns === false ? undefined : dns.servername, "db.example.com")
      assert.isFalse(ip !== false && "servername" in ip)
    }))

  it.scoped("presents an inline client certificate and key, and no depth of inspect or JSON shows the key", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const client = yield* pki.client("app")
      const options = yield* makeTlsOptions(
        makeSettings(local, pki, {
          tls: {
            ca: Option.some({ _tag: "Inline", pem: Redacted.make(pki.ca.certPem) }),
            cert: Option.some({ _tag: "Inline", pem: Redacted.make(client.certPem) }),
            key: Option.some({ _tag: "Inline", pem: Redacted.make(client.keyPem) })
          }
        }),
        local
      )
      if (options === false) return assert.fail("TLS options expected")
      const result = yield* handshake(options, serverOf(pki, { requestCert: true, rejectUnauthorized: true, ca: pki.ca.certPem }))
      assert.strictEqual(typeof result === "string" ? result : result.peer, "app")
      const keyBody = client.keyPem.split("\n")[1] ?? "unreachable"
      for (const text of [JSON.stringify(options), inspect(options, { depth: 10, showHidden: true })]) {
        expect(text).not.toContain("PRIVATE KEY")
        expect(text).not.toContain(keyBody)
      }
    }))

  it.scoped("fails with TlsMaterialInvalid naming the variable and path when a file cannot be read", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const missing = Path.join(pki.dir, "missing.pem")
      const error = yield* Effect.flip(makeTlsOptions(makeSettings(local, pki, { tls: { ca: file(missing) } }), local))
      assert.strictEqual(error.variable, "DB_SSL_CA")
      assert.strictEqual(error.path, missing)
      assert.strictEqual(error.code, "ENOENT")
      expect(error.message).toContain(missing)
    }))

  it.scoped("fails with TlsMaterialInvalid when a file holds no PEM (e.g. a path passed where PEM belongs)", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const notPem = Path.join(pki.dir, "not.pem")
      yield* Effect.promise(() => Fs.writeFile(notPem, "/etc/ssl/ca.crt\n"))
      const error = yield* Effect.flip(makeTlsOptions(makeSettings(local, pki, { tls: { ca: file(notPem) } }), local))
      assert.strictEqual(error.variable, "DB_SSL_CA")
    }))

  it.scoped("blames each broken piece on its own variable: certificate, key, a key of another certificate, CRL", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const client = yield* pki.client("app")
      const garbage = (label: string) =>
        Option.some({ _tag: "Inline" as const, pem: Redacted.make(`-----BEGIN ${label}-----\nbm90IGEga2V5\n-----END ${label}-----\n`) })
      const blamed = (tls: Partial<DbSettings["tls"]>) =>
        Effect.flip(makeTlsOptions(makeSettings(local, pki, { tls }), local)).pipe(Effect.map((e) => e.variable))
      assert.strictEqual(yield* blamed({ cert: garbage("CERTIFICATE"), key: file(client.keyPath) }), "DB_SSL_CERT")
      assert.strictEqual(yield* blamed({ cert: file(client.certPath), key: garbage("PRIVATE KEY") }), "DB_SSL_KEY")
      const otherKey = yield* blamed({ cert: file(client.certPath), key: file(pki.server.keyPath) })
      assert.strictEqual(otherKey, "DB_SSL_KEY")
      assert.strictEqual(yield* blamed({ crl: garbage("X509 CRL") }), "DB_SSL_CRL")
    }))

  it.scoped("fails with TlsMaterialInvalid when only one of certificate and key is set", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const client = yield* pki.client("app")
      const error = yield* Effect.flip(
        makeTlsOptions(makeSettings(local, pki, { tls: { cert: file(client.certPath) } }), local)
      )
      assert.strictEqual(error.variable, "DB_SSL_KEY")
    }))

  it.scoped("decrypts an encrypted key with DB_SSL_KEY_PASSPHRASE and names the passphrase, never its value, when it is wrong", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const client = yield* pki.client("app")
      const passphrase = "key-Pa55phrase-91c4"
      const encrypted = Crypto.createPrivateKey(client.keyPem).export({
        type: "pkcs8",
        format: "pem",
        cipher: "aes-256-cbc",
        passphrase
      }).toString()
      const tls = (secret: string) => ({
        cert: file(client.certPath),
        key: Option.some({ _tag: "Inline" as const, pem: Redacted.make(encrypted) }),
        keyPassphrase: Option.some(Redacted.make(secret))
      })
      const options = yield* makeTlsOptions(makeSettings(local, pki, { tls: tls(passphrase) }), local)
      if (options === false) return assert.fail("TLS options expected")
      assert.isFalse("passphrase" in options)
      const result = yield* handshake(options, serverOf(pki, { requestCert: true, rejectUnauthorized: true, ca: pki.ca.certPem }))
      assert.strictEqual(typeof result === "string" ? result : result.peer, "app")
      const error = yield* Effect.flip(makeTlsOptions(makeSettings(local, pki, { tls: tls("wrong-phrase-77") }), local))
      assert.strictEqual(error.variable, "DB_SSL_KEY_PASSPHRASE")
      for (const text of [error.message, JSON.stringify(error), inspect(error)]) {
        expect(text).not.toContain("wrong-phrase-77")
        expect(text).not.toContain(passphrase)
      }
    }))
})
