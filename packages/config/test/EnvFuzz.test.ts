/**
 * Fuzzing whole environments (fast-check, 10,000 runs): every variable the configuration declares
 * (read from the catalogue, so a new variable is fuzzed without touching this file) gets, or not,
 * a plausible value, random text (any code unit, lone surrogates included), an adversarial one
 * (device files, huge values, broken PEM, numeric edge cases, control characters) or, for the
 * secret-bearing variables, a secret wrapped in random text. Whatever the mix, the loader returns
 * settings or a typed error (`ConfigError`, `InsecureConfiguration`) — never a defect — and no
 * secret-bearing variable's secret appears in the error (message, String, JSON, inspect,
 * Cause.pretty), in a log line, or in a rendering of the settings.
 */
import { assert, describe, it } from "@effect/vitest"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { LeakGuard } from "@takumi/testing"
import fc from "fast-check"
import { afterAll } from "vitest"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { inspect } from "node:util"
import { type VariableName, variableInfo, Variables } from "../src/internal/variables.js"
import { DbConfig } from "../src/index.js"
import * as NodeFileSystem from "../src/internal/nodeFileSystem.js"
import { renderings, testCaPem, withLogs } from "./fixtures.js"

const RUNS = 10_000

/**
 * The property's time bound: 10,000 whole loads are CPU work (≈ 8 ms each alone on a slow 2-core
 * VM, 80 s; up to 120 s beside the suite's other fork), so the bound only catches a hang.
 */
const TIMEOUT_MILLIS = 360_000

const names = Object.keys(Variables.fields) as ReadonlyArray<VariableName>
const secretNames = names.filter((name) => variableInfo[name].secret)

/**
 * The secrets, one per secret-bearing variable: fixed alphanumeric cores (registered with the leak
 * guard once, not 10,000 times) that the generators wrap in random text.
 */
const cores: Readonly<Record<string, string>> = Object.fromEntries(
  secretNames.map((name, i) => [name, `fuzzSecret${i}x${name.replace(/_/g, "").toLowerCase()}Q7`])
)
for (const [name, core] of Object.entries(cores)) LeakGuard.registerUnsafe(core, `EnvFuzz ${name}`)

const folder = Fs.mkdtempSync(Path.join(Os.tmpdir(), "takumi-envfuzz-"))
const caFile = Path.join(folder, "ca.pem")
Fs.writeFileSync(caFile, testCaPem)
afterAll(() => Fs.rmSync(folder, { recursive: true, force: true }))

const adversarial = [
  "",
  " ",
  "\u0000",
  "\t\n",
  "\u202e",
  "\ud800",
  "null",
  "undefined",
  "${VAULT_TOKEN}",
  "-1",
  "-0",
  "0",
  "1e309",
  "0x10",
  "NaN",
  "Infinity",
  "9007199254740993",
  "2147483648",
  "/dev/zero",
  "/dev/stdin",
  "/proc/self/environ",
  "/etc/shadow",
  "/",
  "../../../../etc/passwd",
  caFile,
  folder,
  testCaPem,
  testCaPem.replace("-----END CERTIFICATE-----", ""),
  "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
  "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
  "-----BEGIN X509 CRL-----\n-----END X509 CRL-----",
  "postgres://",
  "postgres://@:0/",
  "postgres://h/d?sslmode=disable&sslmode=verify-full",
  "http://[::1",
  "A".repeat(70_000),
  "%".repeat(300),
  "true,false"
]

/** Values that parse, so that generation also reaches the cross-variable rules and the policy. */
const plausible = (name: VariableName): ReadonlyArray<string> => {
  if (name === "NODE_ENV") return ["development", "test", "staging", "production"]
  if (name === "SECRETS_BACKEND") return ["env", "vault", "aws-secrets-manager"]
  if (name === "DB_SSL_MIN_VERSION") return ["TLSv1.2", "TLSv1.3", "TLSv1.1"]
  if (name === "DB_CHANNEL_BINDING") return ["require", "prefer", "disable"]
  if (name === "DB_REQUIRE_AUTH") return ["scram-sha-256", "md5", "!password", "scram-sha-256,cert"]
  if (name === "AWS_REGION") return ["us-east-1", "eu-west-3"]
  if (name === "VAULT_PATH" || name === "SECRETS_PREFIX") return ["secret/takumi/production", "takumi/staging/", "secret/takumi/test"]
  if (/HOSTS$/.test(name)) return ["vault.example.com", "a.example.com,b.example.com"]
  if (/HOST$/.test(name)) return ["db.example.com", "127.0.0.1", "::1"]
  if (/PORT$/.test(name)) return ["5432", "65535", "1"]
  if (/^DB_SSL(_REJECT_UNAUTHORIZED)?$/.test(name)) return ["true", "false", "1", "0"]
  if (/_(CA|CERT|CRL|CACERT|BUNDLE)$/.test(name)) return [caFile, testCaPem]
  if (/_(URL|ADDR)/.test(name)) return ["https://vault.example.com:8200", "http://127.0.0.1:8200"]
  if (name === "DB_ALERT_POOL_USAGE") return ["0.9", "1", "0.5"]
  return ["1", "100", "2000", "30000", "0"]
}

const wrap = fc.string({ unit: "binary", maxLength: 12 })

/** A secret-bearing variable's value: its core alone, wrapped in random text, or in the shape the variable takes. */
const secretValue = (name: VariableName): fc.Arbitrary<string> => {
  const core = cores[name] ?? ""
  const wrapped = fc.tuple(wrap, wrap).map(([a, b]) => `${a}${core}${b}`)
  const shaped = name === "DATABASE_URL"
    ? fc.tuple(wrapped, fc.constantFrom("", "?sslmode=verify-full", "?sslmode=disable", "?sslmode=junk")).map(([password, query]) =>
      `postgres://app:${encodeURIComponent(password)}@db.example.com:5432/app${query}`
    )
    : name === "DB_SSL_KEY"
    ? wrapped.map((body) => `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`)
    : fc.constant(core)
  return fc.oneof(shaped, wrapped, fc.constant(core))
}

const valueOf = (name: VariableName): fc.Arbitrary<string> =>
  variableInfo[name].secret ? secretValue(name) : fc.oneof(
    { arbitrary: fc.constantFrom(...plausible(name)), weight: 5 },
    { arbitrary: fc.constantFrom(...adversarial), weight: 2 },
    { arbitrary: fc.string({ unit: "binary", maxLength: 40 }), weight: 2 },
    { arbitrary: fc.oneof(fc.integer().map(String), fc.double().map(String)), weight: 1 }
  )

/** A whole environment: each declared variable present or not. */
const environmentArb: fc.Arbitrary<Partial<Record<string, string>>> = fc.record(
  Object.fromEntries(names.map((name) => [name, valueOf(name)])),
  { requiredKeys: [] }
)

const isTyped = (error: unknown) =>
  typeof error === "object" && error !== null && "_tag" in error &&
  (error._tag === "ConfigError" || error._tag === "InsecureConfiguration")

/** Everything a person or a log pipeline could see of the outcome. */
const texts = (exit: Exit.Exit<unknown, unknown>, logs: ReadonlyArray<{ message: string; annotations: unknown }>) => [
  ...(Exit.isSuccess(exit)
    ? [inspect(exit.value, { depth: 10 }), JSON.stringify(exit.value), String(exit.value)]
    : [...Cause.failures(exit.cause)].flatMap(renderings)),
  ...logs.map((line) => `${line.message} ${inspect(line.annotations, { depth: 6 })}`)
]

/** The loader on exactly these variables, with the Node file system built once (10,000 layers would dominate the run). */
const fileSystem = Effect.runSync(FileSystem.FileSystem.pipe(Effect.provide(NodeFileSystem.layer)))
const load = (vars: Partial<Record<string, string>>) =>
  DbConfig.make({ dotEnv: false }).pipe(
    Effect.provideService(FileSystem.FileSystem, fileSystem),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars).flatMap(([k, v]) => v === undefined ? [] : [[k, v]]))))
  )

describe("DbConfig fuzzing", () => {
  it("over whole environments: settings or a typed error, never a defect, never a secret in the error, the logs or the settings", async () => {
    await fc.assert(
      fc.asyncProperty(environmentArb, async (vars) => {
        const { exit, logs } = await Effect.runPromise(withLogs(load(vars)))
        if (Exit.isFailure(exit)) {
          assert.isTrue(Cause.isFailType(exit.cause) && isTyped(exit.cause.error), Cause.pretty(exit.cause))
        }
        const seen = texts(exit, logs).join("\n")
        const echoed = secretNames.filter((name) => {
          const core = cores[name]
          return vars[name] !== undefined && core !== undefined && seen.includes(core)
        })
        assert.deepStrictEqual(echoed, [], "secret-bearing variables echoed")
      }),
      { numRuns: RUNS }
    )
  }, TIMEOUT_MILLIS)
})
