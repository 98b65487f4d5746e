/**
 * The bounds every secrets read keeps, whatever answers: a response body cap and a secret value
 * cap for both backends, Vault redirects only to VAULT_ADDR's host or VAULT_REDIRECT_HOSTS, and
 * TLS verification of the Secrets Manager endpoint from AWS_CA_BUNDLE whatever the environment
 * says. All through the real node-vault and AWS SDK clients against the protocol doubles (not
 * Vault or AWS).
 */
import { afterAll, beforeAll, describe, expect, layer } from "@effect/vitest"
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager"
import { SecretsManagerDouble, TestPki, VaultDouble } from "@takumi/testing"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { vi } from "vitest"
import type { SecretError } from "../src/SecretError.js"
import { SecretsBackend } from "../src/SecretsBackend.js"
import { awsSettings, vaultSettings } from "./fixtures.js"

// The Secrets Manager double does not check SigV4 signatures: static test credentials do.
beforeAll(() => {
  vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDTESTDOUBLE")
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", "test-double-secret")
})
afterAll(() => {
  vi.unstubAllEnvs()
})

class Pki extends Context.Tag("SecretsBackendLimits.test/Pki")<Pki, TestPki.TestPki>() {}

const token = "hvs.test-token-for-the-double"
const path = "secret/takumi/test"
const KiB = 1024
/**
 * What a client that stopped at the 256 KiB cap can have been sent: the cap plus what the socket
 * buffers held when it hung up (measured over TLS here: 128-256 KiB; over plain loopback HTTP the
 * kernel takes about 4 MB first). A client that read on would approach the double's 1 GiB.
 */
const stoppedEarly = 8 * 1024 * KiB

const read = (backend: SecretsBackend["Type"], key: string) => Effect.map(backend.get(key), Redacted.value)

const failure = <E, R>(effect: Effect.Effect<unknown, E, R>) =>
  Effect.flatMap(Effect.either(effect), (result) =>
    Either.isLeft(result) ? Effect.succeed(result.left) : Effect.dieMessage("expected a failure"))

const expectFailure = (
  effect: Effect.Effect<unknown, SecretError>,
  expected: { readonly _tag: SecretError["_tag"]; readonly backend: SecretError["backend"] },
  ...fragments: Array<string>
) =>
  Effect.map(failure(effect), (error) => {
    expect(error).toMatchObject(expected)
    for (const fragment of fragments) expect(error.message).toContain(fragment)
    // Nothing of the body ever reaches the message: not the filler, not the secret's start.
    expect(error.message).not.toContain("aaaa")
    expect(error.message).not.toContain(`DB_PASSWORD":"`)
    return error
  })

/** Sets NODE_TLS_REJECT_UNAUTHORIZED=0 for the rest of the scope, then puts back what was there. */
const withTlsVerificationDisabledInEnv = Effect.acquireRelease(
  Effect.sync(() => {
    const previous = process.env["NODE_TLS_REJECT_UNAUTHORIZED"]
    vi.stubEnv("NODE_TLS_REJECT_UNAUTHORIZED", "0")
    return previous
  }),
  (previous) => Effect.sync(() => void vi.stubEnv("NODE_TLS_REJECT_UNAUTHORIZED", previous))
)

layer(Layer.scoped(Pki, TestPki.make), { excludeTestServices: true })("SecretsBackend limits", (it) => {
  describe("makeVault (against the Vault double)", () => {
    /** The KV secret the backend reads (its default `VAULT_PATH` in the fixtures). */
    const kvPath = "secret/takumi/test"
    const startVault = (options: { readonly certificate?: "server" | "unknownCa"; readonly plain?: boolean } = {}) =>
      Effect.gen(function*() {
        const pki = yield* Pki
        const certificate = pki[options.certificate ?? "server"]
        const double = yield* VaultDouble.make({
          token,
          ...(options.plain === true ? {} : { tls: { certPem: certificate.certPem, keyPem: certificate.keyPem } })
        })
        yield* double.put(path, { DB_PASSWORD: "vault-pw" })
        return double
      })

    const vaultBackend = (address: string, options: Omit<Parameters<typeof vaultSettings>[1], "token"> = {}) =>
      Effect.flatMap(Pki, (pki) =>
        SecretsBackend.makeVault(vaultSettings(address, { token, caPem: pki.ca.certPem, requestTimeoutMs: 10_000, ...options })))

    /** The same double, addressed by name instead of IP: another host as far as the client can tell. */
    const byName = (address: string) => address.replace("127.0.0.1", "localhost")

    it.scoped("stops reading a 1 GiB chunked answer at the 256 KiB response limit, fails SecretsBackendUnavailable, and reads again after", () =>
      Effect.gen(function*() {
        const double = yield* startVault()
        const backend = yield* vaultBackend(double.address)
        yield* double.fault("huge-body")
        yield* expectFailure(
          backend.get("DB_PASSWORD"),
          { _tag: "SecretsBackendUnavailable", backend: "vault" },
          "256 KiB",
          "maxResponseBytes",
          "VAULT_ADDR"
        )
        const sent = yield* double.hugeBodyBytesSent
        expect(sent).toBeGreaterThan(256 * KiB)
        expect(sent).toBeLessThan(stoppedEarly)
        yield* double.clearFaults
        expect(yield* read(backend, "DB_PASSWORD")).toBe("vault-pw")
      }))

    it.scoped("refuses an answer whose Content-Length is above the 256 KiB limit before reading its body", () =>
      Effect.gen(function*() {
        const double = yield* startVault()
        const backend = yield* vaultBackend(double.address)
        yield* double.fault("huge-body-with-length")
        yield* expectFailure(
          backend.get("DB_PASSWORD"),
          { _tag: "SecretsBackendUnavailable", backend: "vault" },
          "Content-Length",
          "256 KiB"
        )
        expect(yield* double.hugeBodyBytesSent).toBeLessThan(stoppedEarly)
      }))

    it.scoped("fails with SecretMalformed for a field above the 64 KiB limit on one secret value, and serves one of exactly 64 KiB", () =>
      Effect.gen(function*() {
        const double = yield* startVault()
        yield* double.put(path, { DB_PASSWORD: "p".repeat(64 * KiB + 1), DB_USER: "u".repeat(64 * KiB) })
        const backend = yield* vaultBackend(double.address)
        yield* expectFailure(
          backend.get("DB_PASSWORD"),
          { _tag: "SecretMalformed", backend: "vault" },
          "64 KiB",
          "maxSecretValueBytes"
        )
        expect(yield* read(backend, "DB_USER")).toHaveLength(64 * KiB)
      }))

    it.scoped("refuses a redirect to another host, naming it and VAULT_REDIRECT_HOSTS, and sends that host nothing", () =>
      Effect.gen(function*() {
        const elsewhere = yield* startVault()
        const standby = yield* startVault()
        yield* standby.redirectTo(byName(elsewhere.address))
        const backend = yield* vaultBackend(standby.address)
        yield* expectFailure(
          backend.get("DB_PASSWORD"),
          { _tag: "SecretsBackendUnavailable", backend: "vault" },
          `"localhost"`,
          "VAULT_REDIRECT_HOSTS"
        )
        // the KV read (the startup token lookup-self is redirected and refused the same way)
        expect(yield* standby.requestCount(kvPath)).toBe(1)
        expect(yield* elsewhere.requestCount()).toBe(0)
      }))

    it.scoped("follows a redirect to a host listed in VAULT_REDIRECT_HOSTS, carrying the token there", () =>
      Effect.gen(function*() {
        const active = yield* startVault()
        const standby = yield* startVault()
        yield* standby.redirectTo(byName(active.address))
        const backend = yield* vaultBackend(standby.address, { redirectHosts: ["localhost"] })
        expect(yield* read(backend, "DB_PASSWORD")).toBe("vault-pw")
        const [forwarded] = yield* active.requests
        expect(forwarded?.headers["x-vault-token"]).toBe(token)
        expect(forwarded?.headers["host"]).toMatch(/^localhost:/)
      }))

    it.scoped("refuses a redirect from https to http even to a listed host", () =>
      Effect.gen(function*() {
        const plain = yield* startVault({ plain: true })
        const standby = yield* startVault()
        yield* standby.redirectTo(byName(plain.address))
        const backend = yield* vaultBackend(standby.address, { redirectHosts: ["localhost"] })
        yield* expectFailure(backend.get("DB_PASSWORD"), { _tag: "SecretsBackendUnavailable", backend: "vault" }, "https to http")
        expect(yield* plain.requestCount()).toBe(0)
      }))

    it.scoped("over plain http (development), follows a redirect to another port of VAULT_ADDR's host but not to another host", () =>
      Effect.gen(function*() {
        const active = yield* startVault({ plain: true })
        const standby = yield* startVault({ plain: true })
        yield* standby.redirectTo(active.address)
        const backend = yield* vaultBackend(standby.address)
        expect(yield* read(backend, "DB_PASSWORD")).toBe("vault-pw")
        expect(yield* active.requestCount(kvPath)).toBe(1)
        yield* standby.redirectTo(byName(active.address))
        yield* backend.invalidate("DB_PASSWORD")
        yield* expectFailure(
          backend.get("DB_PASSWORD"),
          { _tag: "SecretsBackendUnavailable", backend: "vault" },
          `"localhost"`,
          "VAULT_REDIRECT_HOSTS"
        )
        expect(yield* active.requestCount(kvPath)).toBe(1)
      }))
  })

  describe("makeAwsSecretsManager (against the Secrets Manager double)", () => {
    const startAws = (options: { readonly certificate?: "server" | "unknownCa"; readonly plain?: boolean } = {}) =>
      Effect.gen(function*() {
        const pki = yield* Pki
        const certificate = pki[options.certificate ?? "server"]
        const double = yield* SecretsManagerDouble.make(
          options.plain === true ? {} : { tls: { certPem: certificate.certPem, keyPem: certificate.keyPem } }
        )
        yield* double.putSecretString("takumi/test/DB_PASSWORD", "aws-pw")
        return double
      })

    const awsBackend = (endpoint: string, options: Parameters<typeof awsSettings>[1] = {}) =>
      SecretsBackend.makeAwsSecretsManager(awsSettings(endpoint, { requestTimeoutMs: 10_000, ...options }))

    /** A private endpoint (the double over TLS) and a backend trusting its CA through AWS_CA_BUNDLE. */
    const privateEndpoint = (options: Parameters<typeof awsSettings>[1] = {}) =>
      Effect.gen(function*() {
        const pki = yield* Pki
        const double = yield* startAws()
        const backend = yield* awsBackend(double.endpoint, { caPem: pki.ca.certPem, ...options })
        return { double, backend }
      })

    it.scoped("stops reading a 1 GiB chunked answer at the 256 KiB response limit, fails SecretsBackendUnavailable, and reads again after", () =>
      Effect.gen(function*() {
        const { backend, double } = yield* privateEndpoint({ maxAttempts: 3 })
        yield* double.fault("huge-body")
        yield* expectFailure(
          backend.get("DB_PASSWORD"),
          { _tag: "SecretsBackendUnavailable", backend: "aws-secrets-manager" },
          "256 KiB",
          "maxResponseBytes",
          "AWS_ENDPOINT_URL_SECRETS_MANAGER"
        )
        // Not retried: a too-large answer is not transient at the SDK level.
        expect(yield* double.requestCount()).toBe(1)
        const sent = yield* double.hugeBodyBytesSent
        expect(sent).toBeGreaterThan(256 * KiB)
        expect(sent).toBeLessThan(stoppedEarly)
        yield* double.clearFaults
        expect(yield* read(backend, "DB_PASSWORD")).toBe("aws-pw")
      }))

    it.scoped("refuses an answer whose Content-Length is above the 256 KiB limit before reading its body", () =>
      Effect.gen(function*() {
        const { backend, double } = yield* privateEndpoint()
        yield* double.fault("huge-body-with-length")
        yield* expectFailure(
          backend.get("DB_PASSWORD"),
          { _tag: "SecretsBackendUnavailable", backend: "aws-secrets-manager" },
          "Content-Length",
          "256 KiB"
        )
        expect(yield* double.hugeBodyBytesSent).toBeLessThan(stoppedEarly)
      }))

    it.scoped("fails with SecretMalformed for a value above the 64 KiB limit on one secret value, and serves one of exactly 64 KiB", () =>
      Effect.gen(function*() {
        const double = yield* startAws({ plain: true })
        yield* double.putSecretString("takumi/test/DB_PASSWORD", "p".repeat(64 * KiB + 1))
        yield* double.putSecretString("takumi/test/DB_USER", "u".repeat(64 * KiB))
        const backend = yield* awsBackend(double.endpoint)
        yield* expectFailure(
          backend.get("DB_PASSWORD"),
          { _tag: "SecretMalformed", backend: "aws-secrets-manager" },
          "64 KiB",
          "maxSecretValueBytes"
        )
        expect(yield* read(backend, "DB_USER")).toHaveLength(64 * KiB)
      }))

    it.scoped("does not trust a private endpoint's CA without AWS_CA_BUNDLE (SecretsBackendUnavailable, TLS verification)", () =>
      Effect.gen(function*() {
        const double = yield* startAws()
        const backend = yield* awsBackend(double.endpoint)
        yield* expectFailure(
          backend.get("DB_PASSWORD"),
          { _tag: "SecretsBackendUnavailable", backend: "aws-secrets-manager" },
          "TLS verification",
          "AWS_CA_BUNDLE"
        )
        expect(yield* double.requestCount()).toBe(0)
      }))

    it.scoped("trusts the CA from AWS_CA_BUNDLE, as a file or as inline PEM", () =>
      Effect.gen(function*() {
        const pki = yield* Pki
        const double = yield* startAws()
        expect(yield* read(yield* awsBackend(double.endpoint, { caPath: pki.ca.certPath }), "DB_PASSWORD")).toBe("aws-pw")
        expect(yield* read(yield* awsBackend(double.endpoint, { caPem: pki.ca.certPem }), "DB_PASSWORD")).toBe("aws-pw")
      }))

    it.scoped("refuses to build when the AWS_CA_BUNDLE file cannot be read", () =>
      Effect.gen(function*() {
        const pki = yield* Pki
        const double = yield* startAws()
        const error = yield* failure(awsBackend(double.endpoint, { caPath: `${pki.dir}/missing-ca.pem` }))
        expect(error).toMatchObject({ _tag: "SecretsBackendUnavailable", backend: "aws-secrets-manager", key: "AWS_CA_BUNDLE" })
        expect(error.message).toContain("ENOENT")
      }))

    it.scoped("verifies the endpoint's certificate even with NODE_TLS_REJECT_UNAUTHORIZED=0 in the environment", () =>
      Effect.gen(function*() {
        const pki = yield* Pki
        const double = yield* startAws({ certificate: "unknownCa" })
        yield* withTlsVerificationDisabledInEnv
        const backend = yield* awsBackend(double.endpoint, { caPem: pki.ca.certPem })
        yield* expectFailure(
          backend.get("DB_PASSWORD"),
          { _tag: "SecretsBackendUnavailable", backend: "aws-secrets-manager" },
          "TLS verification"
        )
        expect(yield* double.requestCount()).toBe(0)
      }))

    it.scoped("control: the SDK's default handler accepts that certificate with NODE_TLS_REJECT_UNAUTHORIZED=0", () =>
      Effect.gen(function*() {
        const double = yield* startAws({ certificate: "unknownCa" })
        yield* withTlsVerificationDisabledInEnv
        const client = yield* Effect.acquireRelease(
          Effect.sync(() => new SecretsManagerClient({ region: "us-east-1", endpoint: double.endpoint, maxAttempts: 1 })),
          (client) => Effect.sync(() => client.destroy())
        )
        const output = yield* Effect.promise(() =>
          client.send(new GetSecretValueCommand({ SecretId: "takumi/test/DB_PASSWORD" }))
        )
        expect(output.SecretString).toBe("aws-pw")
        expect(yield* double.requestCount()).toBe(1)
      }))
  })
})
