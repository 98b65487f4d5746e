import { expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import NodeVault from "node-vault"
import * as TestPki from "../src/TestPki.js"
import * as VaultDouble from "../src/VaultDouble.js"

interface VaultFailure {
  readonly status: number | undefined
  readonly code: string | undefined
  readonly message: string
}

const statusOf = (error: unknown): VaultFailure => {
  const response = typeof error === "object" && error !== null && "response" in error ? error.response : undefined
  const status = typeof response === "object" && response !== null && "statusCode" in response &&
      typeof response.statusCode === "number"
    ? response.statusCode
    : undefined
  const code = typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined
  return { status, code, message: error instanceof Error ? error.message : String(error) }
}

/** One PKI for the whole file: key generation is the slow part. */
class Pki extends Context.Tag("VaultDouble.test/Pki")<Pki, TestPki.TestPki>() {}

const started = (options: { readonly namespace?: string } = {}) =>
  Effect.gen(function*() {
    const pki = yield* Pki
    const double = yield* VaultDouble.make({
      token: "s.double-token",
      tls: { certPem: pki.server.certPem, keyPem: pki.server.keyPem },
      ...options
    })
    const client = (token: string, namespace?: string) =>
      NodeVault({
        endpoint: double.address,
        token,
        ...(namespace === undefined ? {} : { namespace }),
        requestOptions: { ca: pki.ca.certPem, timeout: 1000 }
      })
    const read = (token: string, path: string, namespace?: string) =>
      Effect.tryPromise({ try: () => client(token, namespace).read(path), catch: statusOf })
    return { double, client, read }
  })

layer(Layer.scoped(Pki, TestPki.make), { excludeTestServices: true })("VaultDouble", (it) => {
  it.scoped("serves a KV v2 secret over HTTPS with the test CA in Vault's data.data / metadata envelope", () =>
    Effect.gen(function*() {
      const { double, read } = yield* started()
      yield* double.put("secret/takumi/production", { DB_PASSWORD: "pw", DB_USER: "takumi_prod" })
      const answer: unknown = yield* read("s.double-token", "secret/data/takumi/production")
      expect(answer).toMatchObject({
        data: { data: { DB_PASSWORD: "pw", DB_USER: "takumi_prod" }, metadata: { version: 1, destroyed: false } }
      })
      const [request] = yield* double.requests
      expect(request?.url).toBe("/v1/secret/data/takumi/production")
      expect(request?.headers["x-vault-token"]).toBe("s.double-token")
    }))

  it.scoped("answers 403 permission denied to a wrong token and to a missing namespace", () =>
    Effect.gen(function*() {
      const { double, read } = yield* started({ namespace: "team-a" })
      yield* double.put("secret/app", { K: "v" })
      const wrongToken = yield* Effect.either(read("s.other", "secret/data/app", "team-a"))
      expect(Either.isLeft(wrongToken) && wrongToken.left).toMatchObject({ status: 403, message: "permission denied" })
      const noNamespace = yield* Effect.either(read("s.double-token", "secret/data/app"))
      expect(Either.isLeft(noNamespace) && noNamespace.left.status).toBe(403)
      const right: unknown = yield* read("s.double-token", "secret/data/app", "team-a")
      expect(right).toMatchObject({ data: { data: { K: "v" } } })
    }))

  it.scoped("bumps the version on every write and serves older versions on ?version=N", () =>
    Effect.gen(function*() {
      const { double, client, read } = yield* started()
      expect(yield* double.put("secret/app", { DB_PASSWORD: "one" })).toBe(1)
      yield* Effect.promise(() => client("s.double-token").write("secret/data/app", { data: { DB_PASSWORD: "two" } }))
      expect(yield* read("s.double-token", "secret/data/app")).toMatchObject({
        data: { data: { DB_PASSWORD: "two" }, metadata: { version: 2 } }
      })
      expect(yield* read("s.double-token", "secret/data/app?version=1")).toMatchObject({
        data: { data: { DB_PASSWORD: "one" }, metadata: { version: 1 } }
      })
    }))

  it.scoped("answers 404 with an empty errors list for a path it does not hold", () =>
    Effect.gen(function*() {
      const { read } = yield* started()
      const result = yield* Effect.either(read("s.double-token", "secret/data/nothing"))
      expect(Either.isLeft(result) && result.left.status).toBe(404)
    }))

  it.scoped("answers the injected HTTP faults per path: 403, 404, 500 and 503 sealed", () =>
    Effect.gen(function*() {
      const { double, read } = yield* started()
      yield* double.put("secret/app", { K: "v" })
      const seen: Array<VaultFailure | "ok"> = []
      for (const fault of ["forbidden", "not-found", "internal-error", "sealed"] as const) {
        yield* double.fault(fault, "secret/app")
        const result = yield* Effect.either(read("s.double-token", "secret/data/app"))
        seen.push(Either.isLeft(result) ? result.left : "ok")
      }
      expect(seen.map((failure) => (failure === "ok" ? 0 : failure.status))).toEqual([403, 404, 500, 503])
      expect(seen[3]).toMatchObject({ message: "Vault is sealed" })
      yield* double.clearFaults
      expect(yield* read("s.double-token", "secret/data/app")).toMatchObject({ data: { data: { K: "v" } } })
    }))

  it.scoped("answers the throttled fault with 429 rate limit quota exceeded, as Vault's rate-limit quotas do", () =>
    Effect.gen(function*() {
      const { double, read } = yield* started()
      yield* double.put("secret/app", { K: "v" })
      yield* double.fault("throttled")
      const result = yield* Effect.either(read("s.double-token", "secret/data/app"))
      expect(Either.isLeft(result) && result.left).toMatchObject({ status: 429, message: "rate limit quota exceeded" })
    }))

  it.scoped("resets the connection or never answers when told to", () =>
    Effect.gen(function*() {
      const { double, read } = yield* started()
      yield* double.put("secret/app", { K: "v" })
      yield* double.fault("reset")
      const reset = yield* Effect.either(read("s.double-token", "secret/data/app"))
      expect(Either.isLeft(reset) && reset.left.code).toBe("ECONNRESET")
      yield* double.fault("hang")
      const hang = yield* read("s.double-token", "secret/data/app").pipe(Effect.timeoutOption("150 millis"))
      expect(Option.isNone(hang)).toBe(true)
      expect(yield* double.requestCount("secret/app")).toBe(2)
    }))
})
