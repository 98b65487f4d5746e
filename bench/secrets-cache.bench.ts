/**
 * SecretCache: cached-get throughput against two baselines measured in the same run (a bare
 * `Effect.succeed` and a plain `Map` lookup in `Effect.sync`), and cold-miss fan-in (backend
 * calls per 1000 concurrent callers of a key that is not cached), with an in-memory backend
 * and with the real AWS SDK against the Secrets Manager double (a protocol double, not AWS).
 *
 *   npx tsx bench/secrets-cache.bench.ts [getsPerRound=200000] [rounds=5]
 */
import { SecretCache, SecretsBackend } from "@takumi/secrets"
import { testSettings } from "@takumi/config"
import { SecretsManagerDouble } from "@takumi/testing"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { performance } from "node:perf_hooks"
import { median } from "./internal/median.js"

const GETS = Number(process.argv[2] ?? 200_000)
const ROUNDS = Number(process.argv[3] ?? 5)
const FAN_IN = 1000

/** Gets per second of `get`, called `GETS` times in sequence inside one Effect. */
const throughput = (get: () => Effect.Effect<unknown, unknown>) =>
  Effect.suspend(() => {
    const start = performance.now()
    return Effect.as(
      Effect.loop(0, { while: (i) => i < GETS, step: (i) => i + 1, body: get, discard: true }),
      undefined
    ).pipe(Effect.map(() => GETS / ((performance.now() - start) / 1000)))
  })

const program = Effect.gen(function*() {
  const value = Redacted.make("bench-password")
  const map = new Map([["DB_PASSWORD", value]])
  let calls = 0
  const cache = yield* SecretCache.make({
    backend: "test",
    lookup: () => Effect.sync(() => (calls++, value)),
    ttl: "5 minutes",
    maxStale: "10 minutes"
  })
  yield* cache.get("DB_PASSWORD")

  const results: Record<string, Array<number>> = { succeed: [], map: [], cache: [] }
  // Interleave contenders so machine noise hits all of them alike.
  for (let round = 0; round < ROUNDS; round++) {
    results.succeed!.push(yield* throughput(() => Effect.succeed(value)))
    results.map!.push(yield* throughput(() => Effect.sync(() => map.get("DB_PASSWORD"))))
    results.cache!.push(yield* throughput(() => cache.get("DB_PASSWORD")))
  }
  const succeed = median(results.succeed!)
  const plainMap = median(results.map!)
  const cached = median(results.cache!)
  console.log(`cached get throughput (${GETS} sequential gets, median of ${ROUNDS} rounds)`)
  console.log(`  Effect.succeed baseline  ${Math.round(succeed).toLocaleString()} gets/s`)
  console.log(`  Map lookup baseline      ${Math.round(plainMap).toLocaleString()} gets/s`)
  console.log(`  SecretCache.get (hit)    ${Math.round(cached).toLocaleString()} gets/s`)
  console.log(`  ratio cache / Effect.succeed = ${(cached / succeed).toFixed(2)}`)
  console.log(`  ratio cache / Map lookup     = ${(cached / plainMap).toFixed(2)}`)
  console.log(`  backend calls during the throughput runs: ${calls} (the warm-up)`)

  // Cold-miss fan-in, in-memory backend with 5 ms latency.
  let slowCalls = 0
  const slow = yield* SecretCache.make({
    backend: "test",
    lookup: () => Effect.as(Effect.sleep("5 millis"), (slowCalls++, value)),
    ttl: "5 minutes",
    maxStale: "10 minutes"
  })
  const keys = 10
  for (let k = 0; k < keys; k++) {
    yield* Effect.forEach(Array.from({ length: FAN_IN }), () => slow.get(`KEY_${k}`), {
      concurrency: "unbounded",
      discard: true
    })
  }
  console.log(`cold-miss fan-in, in-memory backend (5 ms latency): ${slowCalls / keys} backend calls per ${FAN_IN} concurrent callers`)

  // Cold-miss fan-in through the real AWS SDK against the Secrets Manager double.
  process.env.AWS_ACCESS_KEY_ID ??= "AKIDBENCHDOUBLE"
  process.env.AWS_SECRET_ACCESS_KEY ??= "bench-double-secret"
  const double = yield* SecretsManagerDouble.make()
  for (let k = 0; k < keys; k++) yield* double.putSecretString(`takumi/test/KEY_${k}`, `value-${k}`)
  const aws = yield* SecretsBackend.makeAwsSecretsManager(testSettings({
    secrets: {
      backend: "aws-secrets-manager",
      prefix: "takumi/test/",
      requestTimeout: Duration.seconds(5),
      aws: Option.some({ region: "us-east-1", endpoint: Option.some(double.endpoint), maxAttempts: 1, caBundle: Option.none() })
    }
  }))
  const start = performance.now()
  for (let k = 0; k < keys; k++) {
    yield* Effect.forEach(Array.from({ length: FAN_IN }), () => aws.get(`KEY_${k}`), {
      concurrency: "unbounded",
      discard: true
    })
  }
  const elapsed = performance.now() - start
  console.log(
    `cold-miss fan-in, AWS SDK -> Secrets Manager double: ${(yield* double.requestCount()) / keys} GetSecretValue ` +
      `requests per ${FAN_IN} concurrent callers (${keys} keys, ${elapsed.toFixed(0)} ms in all)`
  )
})

Effect.runPromise(
  program.pipe(Effect.scoped, Effect.provide(Logger.minimumLogLevel(LogLevel.Warning)))
).catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
