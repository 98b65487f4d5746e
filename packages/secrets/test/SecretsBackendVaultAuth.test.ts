/**
 * Vault logins and the token lifecycle, through the real node-vault client against the Vault
 * double: each login method, renewal at 2/3 of the TTL, a new login when renewal fails or is
 * capped at the max TTL, the `VaultTokenExpiring` count, and no request with an expired token.
 * Token times run on the TestClock (the double's tokens too); the HTTP is real, so the tests wait
 * (in real time, bounded) for the background renewal to reach the double.
 */
import { describe, expect, it } from "@effect/vitest"
import type { VaultAuth } from "@takumi/config"
import { LeakGuard, VaultDouble } from "@takumi/testing"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import * as VaultBackend from "../src/internal/vault/backend.js"
import * as SecretMetrics from "../src/SecretMetrics.js"
import { SecretsBackend } from "../src/SecretsBackend.js"
import { captureLogs, vaultSettings } from "./fixtures.js"

const staticToken = "hvs.static-token-of-the-auth-tests"
const roleId = "role-id-7f3a1c"
const secretId = "secret-id-of-the-approle-login-4be1"
const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6b3JkZXJzIn0.c2lnbmF0dXJl"
const kvPath = "secret/takumi/test"

const approle: VaultAuth = {
  method: "approle",
  mount: "approle",
  roleId,
  secretId: { _tag: "Inline", value: Redacted.make(secretId) }
}

/** Real time, for the background renewal's HTTP to reach the double while the TestClock stands still. */
const realPause = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 20)))

/** Waits (up to ~10 s real time) until `check` holds. */
const eventually = (check: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < 500; attempt++) {
      if (yield* check) return
      yield* realPause
    }
    return yield* Effect.dieMessage("condition not reached within 10 s")
  })

const tempFile = (name: string, content: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const dir = await Fs.mkdtemp(Path.join(Os.tmpdir(), "takumi-vault-auth-"))
      const file = Path.join(dir, name)
      await Fs.writeFile(file, content, { mode: 0o600 })
      return file
    }),
    (file) => Effect.promise(() => Fs.rm(Path.dirname(file), { recursive: true, force: true }))
  )

const startDouble = (options: Omit<Parameters<typeof VaultDouble.make>[0], "token"> = {}) =>
  Effect.gen(function*() {
    yield* LeakGuard.register(secretId, "approle secret id of the auth tests")
    yield* LeakGuard.register(jwt, "JWT of the auth tests")
    const double = yield* VaultDouble.make({
      token: staticToken,
      logins: [
        { method: "approle", roleId, secretId },
        { method: "kubernetes", mount: "k8s/prod", role: "orders", jwt },
        { method: "jwt", role: "ci", jwt }
      ],
      ...options
    })
    yield* double.put(kvPath, { DB_PASSWORD: "vault-pw" })
    return double
  })

/** The uncached backend (every lookup reads the double), for the lifecycle tests. */
const uncached = (double: VaultDouble.VaultDouble, auth: VaultAuth) => {
  const vault = Option.getOrThrow(vaultSettings(double.address, { token: staticToken, auth }).secrets.vault)
  return VaultBackend.make({ ...vault, ca: undefined, requestTimeout: Duration.seconds(5) })
}

const tokensSentTo = (double: VaultDouble.VaultDouble, path: string) =>
  Effect.map(double.requests, (requests) =>
    requests.filter((request) => request.path === path).map((request) => request.headers["x-vault-token"]))

const read = (lookup: (key: string) => Effect.Effect<Redacted.Redacted<string>, unknown>) =>
  Effect.map(lookup("DB_PASSWORD"), Redacted.value)

describe("Vault login methods (node-vault against the Vault double)", () => {
  it.scoped("approle: logs in with VAULT_ROLE_ID and VAULT_SECRET_ID and reads with the token it got", () =>
    Effect.gen(function*() {
      const double = yield* startDouble()
      const backend = yield* SecretsBackend.makeVault(vaultSettings(double.address, { token: staticToken, auth: approle }))
      expect(Redacted.value(yield* backend.get("DB_PASSWORD"))).toBe("vault-pw")
      expect(yield* double.loginCount("approle")).toBe(1)
      const [sent] = yield* tokensSentTo(double, kvPath)
      expect(sent).toMatch(/^hvs\.double-/)
      const [login] = (yield* double.requests).filter((request) => request.path === "auth/approle/login")
      expect(login?.headers["x-vault-token"]).toBeUndefined()
    }))

  it.scoped("approle: reads the secret id from VAULT_SECRET_ID_FILE at each login", () =>
    Effect.gen(function*() {
      const double = yield* startDouble()
      const file = yield* tempFile("secret-id", `${secretId}\n`)
      const { lookup } = yield* uncached(double, { ...approle, secretId: { _tag: "File", path: file } })
      expect(yield* read(lookup)).toBe("vault-pw")
      expect(yield* double.loginCount("approle")).toBe(1)
    }))

  it.scoped("kubernetes: logs in at VAULT_AUTH_MOUNT with VAULT_ROLE and the service-account JWT file", () =>
    Effect.gen(function*() {
      const double = yield* startDouble()
      const jwtFile = yield* tempFile("token", jwt)
      const { lookup } = yield* uncached(double, { method: "kubernetes", mount: "k8s/prod", role: "orders", jwtFile })
      expect(yield* read(lookup)).toBe("vault-pw")
      expect(yield* double.loginCount("kubernetes")).toBe(1)
      expect(yield* double.requestCount("auth/k8s/prod/login")).toBe(1)
    }))

  it.scoped("jwt: logs in with VAULT_ROLE and VAULT_JWT_FILE", () =>
    Effect.gen(function*() {
      const double = yield* startDouble()
      const jwtFile = yield* tempFile("oidc-token", jwt)
      const { lookup } = yield* uncached(double, { method: "jwt", mount: "jwt", role: "ci", jwtFile })
      expect(yield* read(lookup)).toBe("vault-pw")
      expect(yield* double.loginCount("jwt")).toBe(1)
    }))

  it.scoped("a refused login is SecretAccessDenied naming what to check, without the secret id; nothing is read", () =>
    Effect.gen(function*() {
      const double = yield* startDouble()
      const logs = captureLogs()
      const wrong: VaultAuth = { ...approle, secretId: { _tag: "Inline", value: Redacted.make("a-wrong-secret-id-0001") } }
      const { lookup } = yield* uncached(double, wrong).pipe(Effect.provide(logs.layer))
      const error = yield* Effect.flip(lookup("DB_PASSWORD"))
      expect(error).toMatchObject({ _tag: "SecretAccessDenied", backend: "vault" })
      expect(error.message).toContain("auth/approle/login")
      expect(error.message).toContain("VAULT_ROLE_ID")
      expect(`${error.message} ${logs.lines.join("\n")}`).not.toContain("a-wrong-secret-id-0001")
      expect(yield* double.requestCount(kvPath)).toBe(0)
    }))

  it.scoped("an unreadable VAULT_JWT_FILE names the file and the variable", () =>
    Effect.gen(function*() {
      const double = yield* startDouble()
      const { lookup } = yield* uncached(double, { method: "jwt", mount: "jwt", role: "ci", jwtFile: "/nonexistent/jwt" })
      const error = yield* Effect.flip(lookup("DB_PASSWORD"))
      expect(error.message).toContain("VAULT_JWT_FILE=/nonexistent/jwt")
      expect(error.message).toContain("ENOENT")
    }))
})

describe("Vault token lifetime (TestClock)", () => {
  it.scoped("looks a static token up at startup and renews it at 2/3 of its TTL", () =>
    Effect.gen(function*() {
      const double = yield* startDouble({ tokenLifetime: { ttlSeconds: 60 } })
      const { lookup } = yield* uncached(double, { method: "token", token: Redacted.make(staticToken) })
      expect(yield* double.requestCount("auth/token/lookup-self")).toBe(1)
      yield* TestClock.adjust(Duration.seconds(39))
      yield* realPause
      expect(yield* double.requestCount("auth/token/renew-self")).toBe(0)
      yield* TestClock.adjust(Duration.seconds(1))
      yield* eventually(Effect.map(double.requestCount("auth/token/renew-self"), (count) => count === 1))
      // past the original 60 s: only the renewal keeps it alive
      yield* TestClock.adjust(Duration.seconds(30))
      expect(yield* read(lookup)).toBe("vault-pw")
    }))

  it.scoped("a login token is renewed, not replaced, while renewal works", () =>
    Effect.gen(function*() {
      const double = yield* startDouble({ loginLifetime: { ttlSeconds: 60 } })
      const { lookup } = yield* uncached(double, approle)
      yield* TestClock.adjust(Duration.seconds(40))
      yield* eventually(Effect.map(double.requestCount("auth/token/renew-self"), (count) => count === 1))
      yield* TestClock.adjust(Duration.seconds(30))
      expect(yield* read(lookup)).toBe("vault-pw")
      expect(yield* double.loginCount("approle")).toBe(1)
    }))

  it.scoped("logs in again when renewal fails, and reads with the new token", () =>
    Effect.gen(function*() {
      const double = yield* startDouble({ loginLifetime: { ttlSeconds: 60 } })
      const { lookup } = yield* uncached(double, approle)
      expect(yield* read(lookup)).toBe("vault-pw")
      const [first] = yield* tokensSentTo(double, kvPath)
      yield* double.failRenewals(true)
      yield* TestClock.adjust(Duration.seconds(40))
      yield* eventually(Effect.map(double.loginCount("approle"), (count) => count === 2))
      yield* TestClock.adjust(Duration.seconds(30))
      expect(yield* read(lookup)).toBe("vault-pw")
      const sent = yield* tokensSentTo(double, kvPath)
      expect(sent).toHaveLength(2)
      expect(sent[1]).not.toBe(first)
    }))

  it.scoped("logs in again when the renewal is capped at the max TTL", () =>
    Effect.gen(function*() {
      const double = yield* startDouble({ loginLifetime: { ttlSeconds: 60, maxTtlSeconds: 90 } })
      yield* uncached(double, approle)
      yield* TestClock.adjust(Duration.seconds(40))
      // renew-self grants 50 s (90 - 40) instead of 60: the max TTL is near
      yield* eventually(Effect.map(double.loginCount("approle"), (count) => count === 2))
      expect(yield* double.requestCount("auth/token/renew-self")).toBe(1)
    }))

  it.scoped("a static token whose renewal fails is counted as expiring, then refused locally once expired", () =>
    Effect.gen(function*() {
      const double = yield* startDouble({ tokenLifetime: { ttlSeconds: 60 } })
      const logs = captureLogs()
      const { lookup } = yield* uncached(double, { method: "token", token: Redacted.make(staticToken) }).pipe(
        Effect.provide(logs.layer)
      )
      const before = (yield* Metric.value(SecretMetrics.vaultTokenExpiring)).count
      yield* double.failRenewals(true)
      yield* TestClock.adjust(Duration.seconds(40))
      yield* eventually(Effect.map(Metric.value(SecretMetrics.vaultTokenExpiring), ({ count }) => count > before))
      expect(logs.lines.some((line) => line.includes("renewal (or a new login) failed"))).toBe(true)
      expect(logs.lines.join("\n")).not.toContain(staticToken)
      expect(yield* read(lookup)).toBe("vault-pw")
      const readsBefore = yield* double.requestCount(kvPath)
      yield* TestClock.adjust(Duration.seconds(21))
      const error = yield* Effect.flip(lookup("DB_PASSWORD"))
      expect(error).toMatchObject({ _tag: "SecretAccessDenied", backend: "vault" })
      expect(error.message).toContain("expired")
      expect(error.message).toContain("not sent")
      expect(yield* double.requestCount(kvPath)).toBe(readsBefore)
    }))

  it.scoped("with a login method, a token known to be expired is never sent: it logs in first", () =>
    Effect.gen(function*() {
      const double = yield* startDouble({ loginLifetime: { ttlSeconds: 60, renewable: false } })
      const { lookup } = yield* uncached(double, approle)
      expect(yield* read(lookup)).toBe("vault-pw")
      const [first] = yield* tokensSentTo(double, kvPath)
      // not renewable, and the background's new login fails: the token runs out
      yield* double.fault("internal-error", "auth/approle/login")
      yield* TestClock.adjust(Duration.seconds(40))
      yield* eventually(Effect.map(double.requestCount("auth/approle/login"), (count) => count === 2))
      // the retries due from 41 s fail too; at 61 s the token has expired and the retries stop
      yield* TestClock.adjust(Duration.seconds(21))
      yield* eventually(Effect.map(double.requestCount("auth/approle/login"), (count) => count >= 3))
      yield* realPause.pipe(Effect.repeatN(25))
      yield* double.clearFaults
      expect(yield* read(lookup)).toBe("vault-pw")
      const sent = yield* tokensSentTo(double, kvPath)
      expect(sent).toHaveLength(2)
      expect(sent[1]).not.toBe(first)
      expect(yield* double.loginCount("approle")).toBeGreaterThanOrEqual(2)
    }))

  it.scoped("a login token revoked out of band is found dead by its lookup-self, and the read logs in again", () =>
    Effect.gen(function*() {
      const double = yield* startDouble()
      const { lookup } = yield* uncached(double, approle)
      expect(yield* read(lookup)).toBe("vault-pw")
      const [first] = yield* tokensSentTo(double, kvPath)
      yield* double.revokeToken(String(first))
      expect(yield* read(lookup)).toBe("vault-pw")
      expect(yield* double.loginCount("approle")).toBe(2)
      const sent = yield* tokensSentTo(double, kvPath)
      expect(sent).toHaveLength(3)
      expect(sent[2]).not.toBe(first)
    }))

  it.scoped("a denial by policy (the token still looks itself up) is not answered with a new login", () =>
    Effect.gen(function*() {
      const double = yield* startDouble()
      const { describe } = yield* uncached(double, approle)
      yield* double.denyMetadata(kvPath)
      const error = yield* Effect.flip(describe("DB_PASSWORD"))
      expect(error._tag).toBe("SecretAccessDenied")
      expect(yield* double.loginCount("approle")).toBe(1)
      expect(yield* double.requestCount("auth/token/lookup-self")).toBe(1)
    }))

  it.scoped("revokes a login's token on shutdown (revoke-self), never a static VAULT_TOKEN", () =>
    Effect.gen(function*() {
      const double = yield* startDouble()
      const sent = yield* Effect.scoped(
        Effect.flatMap(uncached(double, approle), ({ lookup }) => Effect.zipRight(read(lookup), tokensSentTo(double, kvPath)))
      )
      expect(yield* double.revocations).toBe(1)
      const [revoked] = sent
      const [request] = (yield* double.requests).filter((candidate) => candidate.path === "auth/token/revoke-self")
      expect(request?.headers["x-vault-token"]).toBe(revoked)
      expect(request?.method).toBe("POST")
      yield* Effect.scoped(
        Effect.flatMap(uncached(double, { method: "token", token: Redacted.make(staticToken) }), ({ lookup }) => read(lookup))
      )
      expect(yield* double.revocations).toBe(1)
    }))
})
