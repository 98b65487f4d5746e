/**
 * The token side of the Vault double, driven by the real node-vault client (its own axios
 * transport, over plain http on 127.0.0.1): logins, lookup-self, renew-self, TTL, max TTL and
 * expiry on the TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import NodeVault from "node-vault"
import * as LeakGuard from "../src/LeakGuard.js"
import * as VaultDouble from "../src/VaultDouble.js"

const staticToken = "s.double-auth-static-token"
const secretId = "double-auth-secret-id-91c2"
const jwt = "double-auth.jwt-of-the-service-account"

/** The HTTP status of a node-vault failure, never its message (axios errors carry the token). */
const statusOf = (error: unknown): number | undefined => {
  const response = typeof error === "object" && error !== null && "response" in error ? error.response : undefined
  return typeof response === "object" && response !== null && "statusCode" in response &&
      typeof response.statusCode === "number"
    ? response.statusCode
    : undefined
}

const started = (options: Omit<Parameters<typeof VaultDouble.make>[0], "token" | "logins"> = {}) =>
  Effect.gen(function*() {
    yield* LeakGuard.register(secretId, "VaultDoubleAuth.test secret id")
    yield* LeakGuard.register(jwt, "VaultDoubleAuth.test JWT")
    const double = yield* VaultDouble.make({
      token: staticToken,
      logins: [
        { method: "approle", roleId: "role-a", secretId },
        { method: "kubernetes", mount: "k8s", role: "orders", jwt },
        { method: "jwt", role: "ci", jwt }
      ],
      ...options
    })
    yield* double.put("secret/app", { DB_PASSWORD: "pw-of-the-double-auth-test" })
    const client = (token?: string) =>
      NodeVault({ endpoint: double.address, ...(token === undefined ? {} : { token }), requestOptions: { timeout: 2000 } })
    const call = <A>(run: () => Promise<A>) => Effect.tryPromise({ try: run, catch: statusOf })
    return { double, client, call }
  })

describe("VaultDouble tokens (node-vault)", () => {
  it.scoped("logs in with each method and answers 400 to a wrong role, secret id or JWT", () =>
    Effect.gen(function*() {
      const { call, client, double } = yield* started()
      const vault = client()
      const approle: { auth: { client_token: string; lease_duration: number; renewable: boolean } } = yield* call(() =>
        vault.approleLogin({ role_id: "role-a", secret_id: secretId })
      )
      expect(approle.auth).toMatchObject({ lease_duration: 3600, renewable: true })
      const k8s: { auth: { client_token: string } } = yield* call(() =>
        vault.kubernetesLogin({ mount_point: "k8s", role: "orders", jwt })
      )
      yield* call(() => vault.jwtLogin({ role: "ci", jwt }))
      expect(approle.auth.client_token).not.toBe(k8s.auth.client_token)
      expect(yield* double.loginCount("approle")).toBe(1)
      expect(yield* double.loginCount("kubernetes")).toBe(1)
      expect(yield* double.loginCount("jwt")).toBe(1)
      // the issued token reads the KV secret
      const read: { data: { data: { DB_PASSWORD: string } } } = yield* call(() => client(approle.auth.client_token).read("secret/data/app"))
      expect(read.data.data.DB_PASSWORD).toBe("pw-of-the-double-auth-test")
      expect(yield* Effect.flip(call(() => vault.approleLogin({ role_id: "role-a", secret_id: "wrong-secret-id" })))).toBe(400)
      expect(yield* Effect.flip(call(() => vault.kubernetesLogin({ mount_point: "k8s", role: "other", jwt })))).toBe(400)
      expect(yield* Effect.flip(call(() => vault.jwtLogin({ role: "ci", jwt: "not.the.jwt" })))).toBe(400)
      expect(yield* double.loginCount("approle")).toBe(1)
    }))

  it.scoped("lookup-self tells the TTL left and renewability; renew-self extends it up to the max TTL", () =>
    Effect.gen(function*() {
      const { call, client } = yield* started({ tokenLifetime: { ttlSeconds: 60, maxTtlSeconds: 100 } })
      const vault = client(staticToken)
      const first: { data: { ttl: number; renewable: boolean; explicit_max_ttl: number } } = yield* call(() => vault.tokenLookupSelf())
      expect(first.data).toMatchObject({ ttl: 60, renewable: true, explicit_max_ttl: 100 })
      yield* TestClock.adjust(Duration.seconds(30))
      const later: { data: { ttl: number } } = yield* call(() => vault.tokenLookupSelf())
      expect(later.data.ttl).toBe(30)
      const renewed: { auth: { lease_duration: number }; warnings: unknown } = yield* call(() => vault.tokenRenewSelf())
      expect(renewed.auth.lease_duration).toBe(60)
      expect(renewed.warnings).toBeNull()
      yield* TestClock.adjust(Duration.seconds(50))
      // 80 s after issue: a 60 s renewal would pass the 100 s max TTL, so it is capped at 20 s
      const capped: { auth: { lease_duration: number }; warnings: ReadonlyArray<string> } = yield* call(() => vault.tokenRenewSelf())
      expect(capped.auth.lease_duration).toBe(20)
      expect(capped.warnings[0]).toContain("max_ttl")
    }))

  it.scoped("answers 403 permission denied once a token has expired, and 400 to renewing a non-renewable one", () =>
    Effect.gen(function*() {
      const { call, client, double } = yield* started({ loginLifetime: { ttlSeconds: 10, renewable: false } })
      const login: { auth: { client_token: string; renewable: boolean } } = yield* call(() =>
        client().approleLogin({ role_id: "role-a", secret_id: secretId })
      )
      expect(login.auth.renewable).toBe(false)
      const vault = client(login.auth.client_token)
      expect(yield* Effect.flip(call(() => vault.tokenRenewSelf()))).toBe(400)
      yield* TestClock.adjust(Duration.seconds(10))
      expect(yield* Effect.flip(call(() => vault.read("secret/data/app")))).toBe(403)
      expect(yield* Effect.flip(call(() => vault.tokenLookupSelf()))).toBe(403)
      // the static token never expires by default; failRenewals makes renew-self answer 500
      yield* double.failRenewals(true)
      expect(yield* Effect.flip(call(() => client(staticToken).tokenRenewSelf()))).toBe(500)
      yield* double.revokeToken(staticToken)
      expect(yield* Effect.flip(call(() => client(staticToken).read("secret/data/app")))).toBe(403)
    }))
})
