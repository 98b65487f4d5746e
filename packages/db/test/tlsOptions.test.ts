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
import { TestPki } from "@takumi/testing"
import { cipherList, isStrongCipher, makeTlsOptions, tls12Ciphers } from "../src/internal/tlsOptions.js"
import { file, makeSettings } from "./fixtures.js"

const local = { host: "127.0.0.1", port: 5432 }

class Pki extends Context.Tag("db-test/Pki")<Pki, TestPki.TestPki>() {}

layer(Layer.scoped(Pki, Effect.orDie(TestPki.make)), { timeout: 60_000 })("tlsOptions", (it) => {
  it.effect("returns false when TLS is disabled, so that PGSSLMODE cannot switch it on", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const options = yield* makeTlsOptions(makeSettings(local, pki, { tls: { enabled: false } }), local.host)
      assert.strictEqual(options, false)
    }))

  it.effect("reads the CA file, keeps rejectUnauthorized and minVersion, and offers strong ciphers only", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const options = yield* makeTlsOptions(makeSettings(local, pki, { tls: { minVersion: "TLSv1.3" } }), local.host)
      assert.notStrictEqual(options, false)
      if (options === false) return
      assert.strictEqual(options.ca, pki.ca.certPem)
      assert.strictEqual(options.rejectUnauthorized, true)
      assert.strictEqual(options.minVersion, "TLSv1.3")
      assert.strictEqual(options.ciphers, cipherList)
      for (const cipher of tls12Ciphers) expect(cipher).toMatch(/^ECDHE-(RSA|ECDSA)-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)$/)
      // OpenSSL accepts the list as it is
      Tls.createSecureContext({ ciphers: options.ciphers })
    }))

  it("classifies cipher names into the strong set", () => {
    assert.isTrue(isStrongCipher("TLS_AES_256_GCM_SHA384"))
    assert.isTrue(isStrongCipher("ECDHE-RSA-CHACHA20-POLY1305"))
    assert.isFalse(isStrongCipher("AES256-SHA"))
    assert.isFalse(isStrongCipher("ECDHE-RSA-AES256-SHA384"))
  })

  it.effect("sets the server name for a DNS host and never for an IP address", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const dns = yield* makeTlsOptions(makeSettings({ host: "db.example.com", port: 5432 }, pki), "db.example.com")
      const ip = yield* makeTlsOptions(makeSettings(local, pki), local.host)
      assert.strictEqual(dns === false ? undefined : dns.servername, "db.example.com")
      assert.isFalse(ip !== false && "servername" in ip)
    }))

  it.effect("accepts inline PEM and hides the private key from JSON and inspect", () =>
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
        local.host
      )
      if (options === false) return assert.fail("TLS options expected")
      assert.strictEqual(options.cert, client.certPem)
      assert.strictEqual(options.key, client.keyPem)
      expect(JSON.stringify(options)).not.toContain("PRIVATE KEY")
      expect(inspect(options)).not.toContain("PRIVATE KEY")
    }))

  it.effect("fails with TlsMaterialInvalid naming the variable and path when a file cannot be read", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const missing = Path.join(pki.dir, "missing.pem")
      const error = yield* Effect.flip(makeTlsOptions(makeSettings(local, pki, { tls: { ca: file(missing) } }), local.host))
      assert.strictEqual(error.variable, "DB_SSL_CA")
      assert.strictEqual(error.path, missing)
      assert.strictEqual(error.code, "ENOENT")
      expect(error.message).toContain(missing)
    }))

  it.effect("fails with TlsMaterialInvalid when a file holds no PEM (e.g. a path passed where PEM belongs)", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const notPem = Path.join(pki.dir, "not.pem")
      yield* Effect.promise(() => Fs.writeFile(notPem, "/etc/ssl/ca.crt\n"))
      const error = yield* Effect.flip(makeTlsOptions(makeSettings(local, pki, { tls: { ca: file(notPem) } }), local.host))
      assert.strictEqual(error.variable, "DB_SSL_CA")
    }))

  it.effect("fails with TlsMaterialInvalid when only one of certificate and key is set", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const client = yield* pki.client("app")
      const error = yield* Effect.flip(
        makeTlsOptions(makeSettings(local, pki, { tls: { cert: file(client.certPath) } }), local.host)
      )
      assert.strictEqual(error.variable, "DB_SSL_KEY")
    }))

  it.effect("decrypts an encrypted key with DB_SSL_KEY_PASSPHRASE and names the passphrase, never its value, when it is wrong", () =>
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
      const options = yield* makeTlsOptions(makeSettings(local, pki, { tls: tls(passphrase) }), local.host)
      if (options === false) return assert.fail("TLS options expected")
      assert.isFalse("passphrase" in options)
      expect(String(options.key)).toContain("-----BEGIN PRIVATE KEY-----")
      const error = yield* Effect.flip(makeTlsOptions(makeSettings(local, pki, { tls: tls("wrong-phrase-77") }), local.host))
      assert.strictEqual(error.variable, "DB_SSL_KEY_PASSPHRASE")
      for (const text of [error.message, JSON.stringify(error), inspect(error)]) {
        expect(text).not.toContain("wrong-phrase-77")
        expect(text).not.toContain(passphrase)
      }
    }))
})
