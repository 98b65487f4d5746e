/**
 * Fuzzing secret payloads (fast-check, 10,000 runs per backend) through the backends' own parsing
 * code — the Vault backend's KV v2 envelope and field extraction, the Secrets Manager backend's
 * size bound, SecretString / SecretBinary decoding, JSON and RDS-field handling — with the wire
 * left out: node-vault and the AWS SDK client are replaced in this file by stand-ins that hand the
 * generated (already parsed) answer to the backend, since 10,000 HTTP round trips would take
 * minutes. The HTTP path is covered against the Vault and Secrets Manager doubles in
 * SecretsBackendVault.test.ts, SecretsBackendAws.test.ts and SecretsBackendLimits.test.ts.
 *
 * Generated: KV v2 envelopes and arbitrary JSON, the field as strings, numbers, empty, huge
 * (above and at the 64 KiB limit), nested objects and arrays thousands of levels deep; Secrets
 * Manager strings (plain, JSON objects with the field or RDS `password`, arrays, broken JSON),
 * binaries (UTF-8 of those, invalid UTF-8, empty), both or neither. Properties: the lookup ends in
 * the value or a typed `SecretError`, never a defect; it yields exactly the value the Vault field
 * holds when that is usable; and the secret never appears in a rendering of an error or of the
 * `Redacted` result.
 */
import { assert, describe, it } from "@effect/vitest"
import { LeakGuard } from "@takumi/testing"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import fc from "fast-check"
import { inspect } from "node:util"
import { afterAll, vi } from "vitest"
import * as AwsBackend from "../src/internal/aws/backend.js"
import { maxSecretValueBytes } from "../src/internal/secretLimits.js"
import * as VaultBackend from "../src/internal/vault/backend.js"

const RUNS = 10_000
const KEY = "DB_PASSWORD"
const CORE = "payloadFuzzSecret7c1e9a2b"
LeakGuard.registerUnsafe(CORE, "PayloadFuzz secret")

/** What the stand-in clients answer next (set by each run). */
const answer = vi.hoisted(() => ({ vault: undefined as unknown, aws: {} as Record<string, unknown> }))

vi.mock("node-vault", () => ({
  default: () => ({ read: () => Promise.resolve(answer.vault) })
}))

vi.mock("@aws-sdk/client-secrets-manager", () => ({
  SecretsManagerClient: class {
    readonly middlewareStack = { add: () => undefined }
    send() {
      return Promise.resolve(answer.aws)
    }
    destroy() {}
  },
  GetSecretValueCommand: class {
    constructor(readonly input: unknown) {}
  },
  DescribeSecretCommand: class {
    constructor(readonly input: unknown) {}
  }
}))

const scope = Effect.runSync(Scope.make())
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))
const build = <A, E>(make: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Scope.extend(make, scope))

const vault = await build(VaultBackend.make({
  address: "http://vault.invalid:8200",
  auth: { method: "token", token: Redacted.make("hvs.payload-fuzz-token") },
  path: "secret/takumi/test",
  namespace: Option.none(),
  ca: undefined,
  redirectHosts: [],
  requestTimeout: "5 seconds"
}))
const aws = await build(AwsBackend.make({
  region: "us-east-1",
  endpoint: Option.none(),
  maxAttempts: 1,
  prefix: "takumi/test/",
  ca: undefined,
  requestTimeout: "5 seconds"
}))

/** The secret in random text (any code unit, lone surrogates included). */
const wrapped = fc.tuple(fc.string({ unit: "binary", maxLength: 10 }), fc.string({ unit: "binary", maxLength: 10 }))
  .map(([a, b]) => `${a}${CORE}${b}`)

/** Nested `depth` levels deep in objects or arrays around the secret. */
const nested = fc.tuple(fc.integer({ min: 1, max: 1000 }), fc.boolean()).map(([depth, arrays]) => {
  let value: unknown = CORE
  for (let i = 0; i < depth; i++) value = arrays ? [value] : { [KEY]: value }
  return value
})

/** What the field may hold. */
const fieldValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: wrapped, weight: 4 },
  { arbitrary: fc.constantFrom("", CORE, `${CORE}${"x".repeat(maxSecretValueBytes - CORE.length)}`), weight: 1 },
  { arbitrary: fc.constant(`${CORE}${"x".repeat(maxSecretValueBytes)}`), weight: 1 },
  { arbitrary: fc.oneof(fc.integer(), fc.double(), fc.constant(2 ** 53), fc.constant(-(2 ** 53) + 1)), weight: 1 },
  { arbitrary: fc.constantFrom(null, true, false, [CORE], { value: CORE }), weight: 1 },
  { arbitrary: nested, weight: 1 },
  { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 1 }
)

const extraFields = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 })

/** A body as node-vault hands it over (parsed JSON). */
const vaultBody: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.tuple(fieldValue, extraFields).map(([value, extra]) => ({ data: { data: { ...extra, [KEY]: value } } })), weight: 6 },
  { arbitrary: extraFields.map((extra) => ({ data: { data: extra } })), weight: 1 },
  { arbitrary: fieldValue.map((value) => ({ data: { data: value } })), weight: 1 },
  { arbitrary: fieldValue.map((value) => ({ data: value })), weight: 1 },
  { arbitrary: fc.oneof(fieldValue, fc.jsonValue({ maxDepth: 3 }), fc.constant(undefined)), weight: 1 }
)

/** The value a usable Vault field yields, if it is one. */
const usable = (body: unknown): string | undefined => {
  const record = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)
  const fields = record(body) && record(body.data) && record(body.data.data) ? body.data.data : undefined
  const value = fields?.[KEY]
  if (typeof value === "string") return value.length > 0 && Buffer.byteLength(value) <= maxSecretValueBytes ? value : undefined
  return typeof value === "number" && Number.isSafeInteger(value) ? String(value) : undefined
}

const secretText: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: wrapped, weight: 3 },
  { arbitrary: fc.tuple(fieldValue, extraFields).map(([value, extra]) => JSON.stringify({ ...extra, [KEY]: value })), weight: 3 },
  { arbitrary: fieldValue.map((value) => JSON.stringify({ password: value, username: "app" })), weight: 1 },
  { arbitrary: fieldValue.map((value) => JSON.stringify([value])), weight: 1 },
  { arbitrary: wrapped.map((text) => `{"${KEY}": "${text}`), weight: 1 },
  { arbitrary: fc.integer({ min: 1, max: 20_000 }).map((depth) => `${"[".repeat(depth)}"${CORE}"`), weight: 1 },
  { arbitrary: fc.constantFrom("", " ", `  {${CORE}`, `${CORE}${"y".repeat(maxSecretValueBytes)}`), weight: 1 }
)

const utf8 = (text: string) => new TextEncoder().encode(text)

/** A GetSecretValue output: SecretString, SecretBinary (valid UTF-8 or not, empty), both or neither. */
const awsOutput: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  { arbitrary: secretText.map((text) => ({ SecretString: text })), weight: 4 },
  { arbitrary: secretText.map((text) => ({ SecretBinary: utf8(text) })), weight: 3 },
  {
    arbitrary: fc.tuple(fc.uint8Array({ maxLength: 16 }), fc.uint8Array({ maxLength: 16 })).map(([a, b]) => ({
      SecretBinary: Uint8Array.from([...a, 0xff, 0xfe, ...utf8(CORE), ...b])
    })),
    weight: 1
  },
  { arbitrary: fc.constantFrom({ SecretBinary: new Uint8Array() }, {}), weight: 1 },
  { arbitrary: fc.tuple(secretText, secretText).map(([s, b]) => ({ SecretString: s, SecretBinary: utf8(b) })), weight: 1 }
)

const SECRET_ERRORS = new Set(["SecretNotFound", "SecretAccessDenied", "SecretsBackendUnavailable", "SecretMalformed"])

/** Runs one lookup; asserts it ends in a value or a typed error, and that no rendering shows the secret. */
const lookupChecked = async (lookup: (key: string) => Effect.Effect<Redacted.Redacted<string>, unknown>) => {
  const exit = await Effect.runPromiseExit(lookup(KEY))
  if (Exit.isSuccess(exit)) {
    for (const text of [inspect(exit.value), JSON.stringify(exit.value), String(exit.value)]) assert.notInclude(text, CORE)
    return Option.some(Redacted.value(exit.value))
  }
  assert.isTrue(Cause.isFailType(exit.cause), Cause.pretty(exit.cause))
  if (!Cause.isFailType(exit.cause)) return Option.none()
  const error = exit.cause.error
  const tag = typeof error === "object" && error !== null && "_tag" in error ? error._tag : undefined
  assert.isTrue(typeof tag === "string" && SECRET_ERRORS.has(tag), `untyped failure ${inspect(error)}`)
  const message = error instanceof Error ? error.message : ""
  for (const text of [message, String(error), JSON.stringify(error), inspect(error, { depth: 10 }), Cause.pretty(exit.cause)]) {
    assert.notInclude(text, CORE)
  }
  return Option.none()
}

describe("secret payload fuzzing", () => {
  it("Vault KV v2 answers: the usable field's value or a typed error, never a defect, never the secret in an error", async () => {
    await fc.assert(
      fc.asyncProperty(vaultBody, async (body) => {
        answer.vault = body
        const value = await lookupChecked(vault.lookup)
        assert.deepStrictEqual(Option.getOrUndefined(value), usable(body))
      }),
      { numRuns: RUNS }
    )
  }, 120_000)

  it("Secrets Manager SecretString / SecretBinary: a value or a typed error, never a defect, never the secret in an error", async () => {
    await fc.assert(
      fc.asyncProperty(awsOutput, async (output) => {
        answer.aws = output
        const value = await lookupChecked(aws.lookup)
        const text = typeof output["SecretString"] === "string" ? output["SecretString"] : undefined
        // a plain (not JSON-looking) SecretString within the limit is the value itself
        if (text !== undefined && text.length > 0 && !/^\s*[[{]/.test(text) && Buffer.byteLength(text) <= maxSecretValueBytes) {
          assert.deepStrictEqual(Option.getOrUndefined(value), text)
        }
      }),
      { numRuns: RUNS }
    )
  }, 120_000)
})
