import { expect, layer } from "@effect/vitest"
import { TestPki, VaultDouble } from "@takumi/testing"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import NodeVault from "node-vault"
import { vi } from "vitest"
import type { SecretError } from "../src/SecretError.js"
import { SecretsBackend } from "../src/SecretsBackend.js"
import { vaultSettings } from "./fixtures.js"

/** One PKI for the file: key generation is the slow part. */
class Pki extends Context.Tag("SecretsBackendVault.test/Pki")<Pki, TestPki.TestPki>() {}

const token = "hvs.test-token-for-the-double"
const path = "secret/takumi/test"

/** Sets environment variables for the rest of the scope, then restores them. */
const withEnv = (variables: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      for (const [name, value] of Object.entries(variables)) vi.stubEnv(name, value)
    }),
    () => Effect.sync(() => vi.unstubAllEnvs())
  )

const startDouble = (options: { readonly namespace?: string; readonly certificate?: "server" | "unknownCa" } = {}) =>
  Effect.gen(function*() {
    const pki = yield* Pki
    const certificate = pki[options.certificate ?? "server"]
    const double = yield* VaultDouble.make({
      token,
      tls: { certPem: certificate.certPem, keyPem: certificate.keyPem },
      ...(options.namespace === undefined ? {} : { namespace: options.namespace })
    })
    yield* double.put(path, { DB_PASSWORD: "vault-pw", DB_USER: "takumi_test", DB_HOST: "db.internal", DB_PORT: 5432 })
    return { pki, double }
  })

const backendFor = (
  double: VaultDouble.VaultDouble,
  pki: TestPki.TestPki,
  options: Omit<Parameters<typeof vaultSettings>[1], "token"> & { readonly token?: string } = {}
) => SecretsBackend.makeVault(vaultSettings(double.address, { token, caPath: pki.ca.certPath, ...options }))

/** The KV requests the double saw (not the token's lookup-self at startup). */
const kvRequests = (double: VaultDouble.VaultDouble) =>
  Effect.map(double.requests, (requests) => requests.filter((request) => request.path === path))

const read = (backend: SecretsBackend["Type"], key: string) => Effect.map(backend.get(key), Redacted.value)

const failure = <E, R>(effect: Effect.Effect<unknown, E, R>) =>
  Effect.flatMap(Effect.either(effect), (result) =>
    Either.isLeft(result) ? Effect.succeed(result.left) : Effect.dieMessage("expected a failure"))

const expectFailure = (effect: Effect.Effect<unknown, SecretError>, tag: SecretError["_tag"], ...fragments: Array<string>) =>
  Effect.map(failure(effect), (error) => {
    expect(error).toMatchObject({ _tag: tag, backend: "vault" })
    for (const fragment of fragments) expect(error.message).toContain(fragment)
    return error
  })

layer(Layer.scoped(Pki, TestPki.make), { excludeTestServices: true })(
  "SecretsBackend.makeVault (against the Vault double)",
  (it) => {
    it.scoped("reads the field the key names (DB_PASSWORD, or any other) from KV v2 data.data over HTTPS with VAULT_CACERT", () =>
      Effect.gen(function*() {
        const { double, pki } = yield* startDouble()
        const backend = yield* backendFor(double, pki)
        expect(yield* read(backend, "DB_PASSWORD")).toBe("vault-pw")
        expect(yield* read(backend, "DB_USER")).toBe("takumi_test")
        expect(yield* read(backend, "DB_HOST")).toBe("db.internal")
        expect(yield* read(backend, "DB_PORT")).toBe("5432")
        const [request] = yield* kvRequests(double)
        expect(request?.url).toBe("/v1/secret/data/takumi/test")
        expect(request?.headers["x-vault-token"]).toBe(token)
        expect(request?.headers["x-vault-namespace"]).toBeUndefined()
      }))

    it.scoped("accepts the CA as inline PEM too", () =>
      Effect.gen(function*() {
        const { double, pki } = yield* startDouble()
        const backend = yield* SecretsBackend.makeVault(vaultSettings(double.address, { token, caPem: pki.ca.certPem }))
        expect(yield* read(backend, "DB_PASSWORD")).toBe("vault-pw")
      }))

    it.scoped("sends VAULT_NAMESPACE as the X-Vault-Namespace header", () =>
      Effect.gen(function*() {
        const { double, pki } = yield* startDouble({ namespace: "team-a" })
        const backend = yield* backendFor(double, pki, { namespace: "team-a" })
        expect(yield* read(backend, "DB_PASSWORD")).toBe("vault-pw")
        const [request] = yield* double.requests
        expect(request?.headers["x-vault-namespace"]).toBe("team-a")
      }))

    it.scoped("maps 403 (revoked or under-privileged token) to SecretAccessDenied with the token lookup fix", () =>
      Effect.gen(function*() {
        const { double, pki } = yield* startDouble()
        yield* double.setToken("hvs.someone-else")
        const backend = yield* backendFor(double, pki)
        yield* expectFailure(backend.get("DB_PASSWORD"), "SecretAccessDenied", "vault token lookup", "secret/data/takumi/test")
      }))

    it.scoped("maps 404 to SecretNotFound and a missing field to SecretNotFound with the kv patch fix", () =>
      Effect.gen(function*() {
        const { double, pki } = yield* startDouble()
        const backend = yield* backendFor(double, pki)
        yield* expectFailure(backend.get("DB_NAME"), "SecretNotFound", "vault kv patch secret/takumi/test DB_NAME")
        yield* double.fault("not-found")
        yield* expectFailure(backend.get("DB_PASSWORD"), "SecretNotFound", "HTTP 404", "VAULT_PATH")
      }))

    it.scoped("maps a field that is not a non-empty string to SecretMalformed", () =>
      Effect.gen(function*() {
        const { double, pki } = yield* startDouble()
        yield* double.put(path, { DB_PASSWORD: "", DB_USER: { nested: true } })
        const backend = yield* backendFor(double, pki)
        yield* expectFailure(backend.get("DB_PASSWORD"), "SecretMalformed")
        yield* expectFailure(backend.get("DB_USER"), "SecretMalformed")
      }))

    it.scoped("reads a JSON number field only when it is a safe integer, else fails with SecretMalformed", () =>
      Effect.gen(function*() {
        const { double, pki } = yield* startDouble()
        // The double writes its answer with JSON.stringify, so what goes on the wire is
        // 12345678901234567000: what JSON.parse makes of a real Vault's 12345678901234567890.
        yield* double.put(path, {
          DB_PASSWORD: Number("12345678901234567890"),
          DB_RATIO: 1.5,
          DB_SAFE: Number.MAX_SAFE_INTEGER,
          DB_PORT: 5432
        })
        const backend = yield* backendFor(double, pki)
        const unsafe = yield* expectFailure(backend.get("DB_PASSWORD"), "SecretMalformed", path, "cannot be read exactly")
        expect(unsafe.key).toBe("DB_PASSWORD")
        expect(unsafe.message).not.toContain("1234567890")
        yield* expectFailure(backend.get("DB_RATIO"), "SecretMalformed", "cannot be read exactly")
        expect(yield* read(backend, "DB_SAFE")).toBe("9007199254740991")
        expect(yield* read(backend, "DB_PORT")).toBe("5432")
      }))

    it.scoped("maps 500, 503 sealed and a reset connection to SecretsBackendUnavailable", () =>
      Effect.gen(function*() {
        const { double, pki } = yield* startDouble()
        const backend = yield* backendFor(double, pki)
        yield* double.fault("internal-error")
        yield* expectFailure(backend.get("DB_PASSWORD"), "SecretsBackendUnavailable", "HTTP 500")
        yield* double.fault("sealed")
        yield* expectFailure(backend.get("DB_PASSWORD"), "SecretsBackendUnavailable", "sealed", "vault operator unseal")
        yield* double.fault("reset")
        yield* expectFailure(backend.get("DB_PASSWORD"), "SecretsBackendUnavailable", "ECONNRESET")
      }))

    it.scoped("maps 429 (a rate-limit quota exceeded) to SecretsBackendUnavailable", () =>
      Effect.gen(function*() {
        const { double, pki } = yield* startDouble()
        const backend = yield* backendFor(double, pki)
        yield* double.fault("throttled")
        const error = yield* expectFailure(backend.get("DB_PASSWORD"), "SecretsBackendUnavailable", "HTTP 429")
        expect(error.key).toBe("DB_PASSWORD")
        expect(yield* double.requestCount(path)).toBe(1)
      }))

    it.scoped("maps a refused connection (nothing listens at VAULT_ADDR) to SecretsBackendUnavailable", () =>
      Effect.gen(function*() {
        const pki = yield* Pki
        // A double started and stopped again: its port is closed now.
        const closed = yield* Effect.scoped(startDouble())
        const backend = yield* backendFor(closed.double, pki)
        const error = yield* expectFailure(backend.get("DB_PASSWORD"), "SecretsBackendUnavailable", "ECONNREFUSED")
        expect(error.key).toBe("DB_PASSWORD")
        expect(error.message).toContain(closed.double.address)
      }))

    it.scoped("gives up on a hanging Vault within the request timeout", () =>
      Effect.gen(function*() {
        const { double, pki } = yield* startDouble()
        yield* double.fault("hang")
        const backend = yield* backendFor(double, pki, { requestTimeoutMs: 300 })
        const start = yield* Clock.currentTimeMillis
        yield* expectFailure(backend.get("DB_PASSWORD"), "SecretsBackendUnavailable", "no answer within 300 ms")
        expect((yield* Clock.currentTimeMillis) - start).toBeLessThan(300 + 250)
      }))

    it.scoped("verifies the server certificate whatever VAULT_SKIP_VERIFY says", () =>
      Effect.gen(function*() {
        const { double, pki } = yield* startDouble({ certificate: "unknownCa" })
        for (const skipVerify of ["true", "false", "1"]) {
          yield* Effect.scoped(Effect.gen(function*() {
            yield* withEnv({ VAULT_SKIP_VERIFY: skipVerify })
            const backend = yield* backendFor(double, pki)
            yield* expectFailure(backend.get("DB_PASSWORD"), "SecretsBackendUnavailable", "TLS verification", "VAULT_CACERT")
          }))
        }
        expect(yield* double.requestCount()).toBe(0)
      }))

    it.scoped("control: node-vault's own transport does skip verification for VAULT_SKIP_VERIFY=false and does put the token in its errors", () =>
      Effect.gen(function*() {
        const { double } = yield* startDouble({ certificate: "unknownCa" })
        yield* withEnv({ VAULT_SKIP_VERIFY: "false" })
        const plain = NodeVault({ endpoint: double.address, token })
        const answer: unknown = yield* Effect.promise(() => plain.read("secret/data/takumi/test"))
        expect(answer).toMatchObject({ data: { data: { DB_PASSWORD: "vault-pw" } } })
        yield* double.fault("reset")
        const error = yield* Effect.promise(() => plain.read("secret/data/takumi/test").then(() => undefined, (e: unknown) => e))
        expect(JSON.stringify(error)).toContain(token)
      }))

    it.scoped("does not trust the test CA without VAULT_CACERT", () =>
      Effect.gen(function*() {
        const { double } = yield* startDouble()
        const backend = yield* SecretsBackend.makeVault(vaultSettings(double.address, { token }))
        yield* expectFailure(backend.get("DB_PASSWORD"), "SecretsBackendUnavailable", "TLS verification")
      }))

    it.scoped("reads no VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE or VAULT_PREFIX behind the configuration", () =>
      Effect.gen(function*() {
        const { double, pki } = yield* startDouble()
        yield* withEnv({
          VAULT_ADDR: "https://127.0.0.1:9",
          VAULT_TOKEN: "hvs.from-the-environment",
          VAULT_NAMESPACE: "from-the-environment",
          VAULT_PREFIX: "/bogus-prefix"
        })
        const backend = yield* backendFor(double, pki)
        expect(yield* read(backend, "DB_PASSWORD")).toBe("vault-pw")
        const [request] = yield* kvRequests(double)
        expect(request?.url).toBe("/v1/secret/data/takumi/test")
        expect(request?.headers["x-vault-token"]).toBe(token)
        expect(request?.headers["x-vault-namespace"]).toBeUndefined()
      }))

    it.scoped("is not captured by HTTPS_PROXY / HTTP_PROXY pointing at a dead proxy", () =>
      Effect.gen(function*() {
        const { double, pki } = yield* startDouble()
        yield* withEnv({
          HTTPS_PROXY: "http://127.0.0.1:9",
          https_proxy: "http://127.0.0.1:9",
          HTTP_PROXY: "http://127.0.0.1:9",
          http_proxy: "http://127.0.0.1:9"
        })
        const backend = yield* backendFor(double, pki)
        expect(yield* read(backend, "DB_PASSWORD")).toBe("vault-pw")
      }))

    it.scoped("serves the cached value, then the new version after invalidate (rotation)", () =>
      Effect.gen(function*() {
        const { double, pki } = yield* startDouble()
        const backend = yield* backendFor(double, pki)
        expect(yield* read(backend, "DB_PASSWORD")).toBe("vault-pw")
        yield* double.put(path, { DB_PASSWORD: "rotated-pw" })
        expect(yield* read(backend, "DB_PASSWORD")).toBe("vault-pw")
        expect(yield* double.requestCount(path)).toBe(1)
        yield* backend.invalidate("DB_PASSWORD")
        expect(yield* read(backend, "DB_PASSWORD")).toBe("rotated-pw")
        expect(yield* double.requestCount(path)).toBe(2)
      }))

    it.scoped("follows a standby's redirect to the active node, but never from https to http", () =>
      Effect.gen(function*() {
        const { double: active, pki } = yield* startDouble()
        const standby = yield* VaultDouble.make({ token, tls: { certPem: pki.server.certPem, keyPem: pki.server.keyPem } })
        yield* standby.redirectTo(active.address)
        const backend = yield* backendFor(standby, pki)
        expect(yield* read(backend, "DB_PASSWORD")).toBe("vault-pw")
        expect(yield* active.requestCount(path)).toBe(1)
        const plain = yield* VaultDouble.make({ token })
        yield* plain.put(path, { DB_PASSWORD: "vault-pw" })
        yield* standby.redirectTo(plain.address)
        yield* backend.invalidate("DB_PASSWORD")
        yield* expectFailure(backend.get("DB_PASSWORD"), "SecretsBackendUnavailable", "https to http")
        expect(yield* plain.requestCount()).toBe(0)
      }))

    it.scoped("follows at most 3 redirect hops, carrying the token to the active node", () =>
      Effect.gen(function*() {
        const { double: active, pki } = yield* startDouble()
        const tls = { certPem: pki.server.certPem, keyPem: pki.server.keyPem }
        const standby = yield* VaultDouble.make({ token, tls })
        yield* standby.redirectTo(active.address)
        const backend = yield* backendFor(standby, pki)
        expect(yield* read(backend, "DB_PASSWORD")).toBe("vault-pw")
        const [forwarded] = yield* active.requests
        expect(forwarded?.headers["x-vault-token"]).toBe(token)
        const looping = yield* VaultDouble.make({ token, tls })
        yield* looping.redirectTo(looping.address)
        const loopBackend = yield* backendFor(looping, pki)
        yield* expectFailure(loopBackend.get("DB_PASSWORD"), "SecretsBackendUnavailable", "TOO_MANY_REDIRECTS")
        expect(yield* looping.requestCount("secret/takumi/test")).toBe(4)
      }))

    it.scoped("refuses to build with a VAULT_PATH that names no secret under a mount", () =>
      Effect.gen(function*() {
        const { double, pki } = yield* startDouble()
        const error = yield* failure(backendFor(double, pki, { path: "secret" }))
        expect(error).toMatchObject({ _tag: "SecretsBackendUnavailable", key: "VAULT_PATH" })
      }))

    it.scoped("refuses to build when the VAULT_CACERT file cannot be read", () =>
      Effect.gen(function*() {
        const { double, pki } = yield* startDouble()
        const error = yield* failure(backendFor(double, pki, { caPath: `${pki.dir}/missing-ca.pem` }))
        expect(error).toMatchObject({ _tag: "SecretsBackendUnavailable", key: "VAULT_CACERT" })
        expect(error.message).toContain("ENOENT")
      }))
  }
)
