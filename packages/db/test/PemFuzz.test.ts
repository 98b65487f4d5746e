/**
 * Fuzzing PEM inputs (fast-check, 10,000 runs each) on the two paths that parse certificates and
 * keys: `makeTlsOptions` (the CA bundle, client certificate and key, CRL and key passphrase, each
 * given inline so the configuration's own checks are bypassed and the connection's parsing is
 * what is tested) and the certificate posture (`summarize` / `findings` over the peer
 * certificates node:tls hands over, real ones from the test PKI with fields garbled).
 *
 * Inputs are the test PKI's real PEMs (CA, server, weak RSA, self-signed, CRL, keys plain and
 * encrypted) mutated: truncated, a character flipped, a line dropped or inserted, the label
 * swapped, CRLF line ends, blocks concatenated or repeated, random text. Properties: TLS options
 * or a typed `TlsMaterialInvalid`, never a defect; no line of a private key's body and no
 * passphrase in an error's renderings or in the options; the posture summary never throws and its
 * findings follow the rules (self-signed, RSA below 2048 bits).
 */
import { assert, layer } from "@effect/vitest"
import { TestPki, LeakGuard } from "@takumi/testing"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import fc from "fast-check"
import * as Crypto from "node:crypto"
import type * as Tls from "node:tls"
import { inspect } from "node:util"
import type { PemSource } from "@takumi/config"
import { findings, summarize } from "../src/internal/certificatePosture.js"
import { makeTlsOptions } from "../src/internal/tlsOptions.js"
import { makeSettings } from "./fixtures.js"

const RUNS = 10_000
const PASSPHRASES = ["pem-fuzz-right-passphrase-31", "pem-fuzz-wrong-passphrase-77"] as const
for (const passphrase of PASSPHRASES) LeakGuard.registerUnsafe(passphrase, "PemFuzz key passphrase")

class Pki extends Context.Tag("PemFuzz/Pki")<Pki, TestPki.TestPki>() {}

const inline = (pem: string): PemSource => ({ _tag: "Inline", pem: Redacted.make(pem) })

/** The body lines of a PEM (what a leak of the key would show). */
const bodyLines = (pem: string) => pem.split(/\r?\n/).filter((line) => line.length >= 16 && !line.startsWith("-----"))

/**
 * A PEM mutated one way or another. Broken material is weighted over intact material (unchanged,
 * CRLF, concatenated, repeated): OpenSSL takes milliseconds to load a valid key or bundle, and
 * intact material is what the other tls tests use.
 */
const mutated = (pems: ReadonlyArray<string>): fc.Arbitrary<string> => {
  const pem = fc.constantFrom(...pems)
  return fc.oneof(
    { arbitrary: pem, weight: 1 },
    { arbitrary: fc.tuple(pem, fc.nat()).map(([p, i]) => p.slice(0, i % p.length)), weight: 3 },
    {
      arbitrary: fc.tuple(pem, fc.nat(), fc.constantFrom("A", "/", "=", "-", "\n", "\u0000", "é")).map(([p, i, c]) => {
        const at = i % p.length
        return `${p.slice(0, at)}${c}${p.slice(at + 1)}`
      }),
      weight: 4
    },
    {
      arbitrary: fc.tuple(pem, fc.nat(), fc.string({ unit: "binary", maxLength: 40 })).map(([p, i, text]) => {
        const lines = p.split("\n")
        lines.splice(i % lines.length, 1, ...(text === "" ? [] : [text]))
        return lines.join("\n")
      }),
      weight: 3
    },
    {
      arbitrary: fc.tuple(pem, fc.constantFrom("CERTIFICATE", "PRIVATE KEY", "X509 CRL", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"))
        .map(([p, label]) => p.replace(/(-----(?:BEGIN|END) )[A-Z0-9 ]+(-----)/g, `$1${label}$2`)),
      weight: 1
    },
    { arbitrary: pem.map((p) => p.replace(/\n/g, "\r\n")), weight: 1 },
    { arbitrary: fc.tuple(pem, pem).map(([a, b]) => `${a}${b}`), weight: 1 },
    { arbitrary: fc.tuple(pem, fc.integer({ min: 2, max: 4 })).map(([p, n]) => p.repeat(n)), weight: 1 },
    {
      arbitrary: fc.tuple(fc.constantFrom("CERTIFICATE", "PRIVATE KEY", "X509 CRL"), fc.base64String({ maxLength: 400 }))
        .map(([label, body]) => `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`),
      weight: 1
    },
    { arbitrary: fc.string({ unit: "binary", maxLength: 80 }), weight: 1 }
  )
}

const slot = (arb: fc.Arbitrary<string>) => fc.option(arb, { nil: undefined, freq: 3 })

const renderings = (error: unknown, cause: Cause.Cause<unknown>) => [
  error instanceof Error ? error.message : "",
  String(error),
  JSON.stringify(error),
  inspect(error, { depth: 10 }),
  Cause.pretty(cause)
]

const isTlsMaterialInvalid = (u: unknown) => typeof u === "object" && u !== null && "_tag" in u && u._tag === "TlsMaterialInvalid"

layer(Layer.scoped(Pki, Effect.orDie(TestPki.make)), { timeout: 120_000 })("PEM fuzzing", (it) => {
  it.effect("makeTlsOptions: TLS options or TlsMaterialInvalid, never a defect, never a key line or passphrase in an error or the options", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const encryptedKey = Crypto.createPrivateKey(pki.server.keyPem)
        .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: PASSPHRASES[0] })
        .toString()
      const certificates = [pki.ca.certPem, pki.server.certPem, pki.rsa1024.certPem, pki.selfSigned.certPem, pki.unknownCa.certPem]
      const keys = [pki.server.keyPem, pki.rsa1024.keyPem, pki.unknownCa.keyPem, encryptedKey]
      const keyLines = [...keys, ...keys.map((k) => Crypto.createPrivateKey(k.includes("ENCRYPTED") ? { key: k, passphrase: PASSPHRASES[0] } : k)
        .export({ type: "pkcs8", format: "pem" }).toString())].flatMap(bodyLines)
      const secrets = [...PASSPHRASES, ...keyLines]
      const material = fc.record({
        // a CA almost always (without one node:tls loads its whole root store, a few ms per run)
        ca: fc.option(mutated(certificates), { nil: undefined, freq: 10 }),
        cert: slot(mutated(certificates)),
        key: fc.option(mutated(keys), { nil: undefined, freq: 2 }),
        crl: slot(mutated([pki.crl.pem, pki.ca.certPem])),
        passphrase: fc.option(fc.constantFrom(...PASSPHRASES), { nil: undefined })
      })
      const server = { host: "localhost", port: 5432 }
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(material, async (m) => {
            const some = (pem: string | undefined) => pem === undefined ? Option.none() : Option.some(inline(pem))
            const settings = makeSettings(server, pki, {
              tls: {
                ca: some(m.ca),
                cert: some(m.cert),
                key: some(m.key),
                crl: some(m.crl),
                keyPassphrase: m.passphrase === undefined ? Option.none() : Option.some(Redacted.make(m.passphrase))
              }
            })
            // OpenSSL parses synchronously: let the event loop (vitest's worker RPC) breathe between runs
            await new Promise((resolve) => setImmediate(resolve))
            const exit = await Effect.runPromiseExit(Effect.scoped(makeTlsOptions(settings, server)))
            const texts = Exit.isSuccess(exit)
              ? [inspect(exit.value, { depth: 6 })]
              : Cause.isFailType(exit.cause) && isTlsMaterialInvalid(exit.cause.error)
              ? renderings(exit.cause.error, exit.cause)
              : assert.fail(`not a TlsMaterialInvalid: ${Cause.pretty(exit.cause)}`)
            const seen = texts.join("\n")
            // one assertion per run: chai's per-call cost over ~200 key lines would dominate the run
            assert.deepStrictEqual(secrets.filter((secret) => seen.includes(secret)).length, 0, "a key line or passphrase in the output")
          }),
          { numRuns: RUNS }
        )
      )
    }), 300_000)

  it.effect("the certificate posture summary never throws on a peer certificate and its findings follow the rules", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const peers = [pki.ca, pki.server, pki.rsa1024, pki.selfSigned, pki.expired, pki.cnOnly, pki.unknownCa]
        .map((files) => new Crypto.X509Certificate(files.certPem).toLegacyObject())
      const garbled = fc.record({
        peer: fc.constantFrom(...peers),
        validTo: fc.option(fc.oneof(fc.string({ maxLength: 30 }), fc.date().map(String)), { nil: undefined }),
        bits: fc.option(fc.oneof(fc.integer({ min: 0, max: 16_384 }), fc.constant(Number.NaN)), { nil: undefined }),
        dropModulus: fc.boolean(),
        subject: fc.option(fc.dictionary(fc.constantFrom("CN", "O", "C", "OU"), fc.string({ maxLength: 20 })), { nil: undefined }),
        subjectaltname: fc.option(fc.string({ maxLength: 40 }), { nil: undefined })
      }).map((g): Tls.PeerCertificate => {
        const { modulus, ...rest } = g.peer
        return {
          ...rest,
          ...(g.dropModulus ? {} : { modulus }),
          ...(g.validTo === undefined ? {} : { valid_to: g.validTo }),
          ...(g.bits === undefined ? {} : { bits: g.bits }),
          ...(g.subject === undefined ? {} : { subject: g.subject }),
          ...(g.subjectaltname === undefined ? {} : { subjectaltname: g.subjectaltname })
        }
      })
      fc.assert(
        fc.property(garbled, (peer) => {
          const summary = summarize(peer)
          const rules = findings(summary).map((f) => f.rule)
          const weak = peer.modulus !== undefined && peer.bits !== undefined && peer.bits < 2048
          assert.strictEqual(rules.includes("WeakRsaKey"), weak)
          assert.strictEqual(rules.includes("SelfSignedCertificate"), summary.selfSigned)
          assert.strictEqual(Option.isSome(summary.validTo), !Number.isNaN(new Date(peer.valid_to).getTime()))
        }),
        { numRuns: RUNS }
      )
    }), 120_000)
})
