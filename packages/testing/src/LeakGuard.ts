/**
 * A registry of the secrets a test run creates, and a scanner that finds them in output.
 *
 * Fixtures that make a secret (a role password, a private key, a Vault token, a Secrets Manager
 * value) register it here. The registry is a folder named by `TAKUMI_LEAK_GUARD_DIR`, which the
 * leak-guard reporter creates in the vitest main process before the workers fork (they inherit
 * the variable): each worker appends to its own file, the reporter reads them all at the end and
 * scans everything the run printed. Without the variable (a program outside vitest) registering
 * does nothing.
 *
 * A secret is looked for plain, URL-encoded, JSON-escaped and base64-encoded (standard and
 * URL-safe alphabets, at each of the three byte alignments it can take inside a longer encoded
 * text). Secrets shorter than {@link MIN_LENGTH} characters are not registered: words like
 * `postgres` occur in output by chance, and no fixture uses a real secret that short.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Path from "node:path"

/**
 * The environment variable naming the registry folder.
 *
 * @since 0.1.0
 * @category constants
 */
export const DIR_ENV = "TAKUMI_LEAK_GUARD_DIR"

/**
 * Shorter secrets are not registered (they would match output by chance).
 *
 * @since 0.1.0
 * @category constants
 */
export const MIN_LENGTH = 10

/**
 * A registered secret and what made it (the label, never the value, is what a report shows).
 *
 * @since 0.1.0
 * @category models
 */
export interface Secret {
  readonly label: string
  readonly value: string
}

/**
 * A secret found in output: which one (by label), in which encoding, and where.
 *
 * @since 0.1.0
 * @category models
 */
export interface Leak {
  readonly label: string
  readonly encoding: string
  readonly origin: string
}

/**
 * A piece of output to scan, with where it came from (a worker's stdout, a console log, an error).
 *
 * @since 0.1.0
 * @category models
 */
export interface Output {
  readonly origin: string
  readonly text: string
}

const SECRETS_PREFIX = "secrets-"
const OUTPUT_PREFIX = "output-"

const encode = (text: string) => Buffer.from(text, "utf8").toString("base64")
const decode = (text: string) => Buffer.from(text, "base64").toString("utf8")

/**
 * Registers a secret synchronously (for code outside Effect, e.g. a vitest setup file).
 *
 * @since 0.1.0
 * @category registering
 */
export const registerUnsafe = (secret: string | Redacted.Redacted<string>, label: string): void => {
  const value = Redacted.isRedacted(secret) ? Redacted.value(secret) : secret
  const dir = process.env[DIR_ENV]
  if (dir === undefined || dir === "" || value.length < MIN_LENGTH) return
  Fs.appendFileSync(
    Path.join(dir, `${SECRETS_PREFIX}${process.pid}.txt`),
    `${encode(label)}\t${encode(value)}\n`,
    { mode: 0o600 }
  )
}

/**
 * Registers a secret with the guard of the current test run.
 *
 * @since 0.1.0
 * @category registering
 */
export const register = (secret: string | Redacted.Redacted<string>, label: string): Effect.Effect<void> =>
  Effect.sync(() => registerUnsafe(secret, label))

/**
 * Registers a PEM private key: each line of its base64 body is registered, so a key found
 * re-wrapped, with escaped newlines or partly printed is still a leak.
 *
 * @since 0.1.0
 * @category registering
 */
export const registerPrivateKey = (pem: string, label: string): Effect.Effect<void> =>
  Effect.sync(() => registerPrivateKeyUnsafe(pem, label))

/**
 * {@link registerPrivateKey} for code outside Effect.
 *
 * @since 0.1.0
 * @category registering
 */
export const registerPrivateKeyUnsafe = (pem: string, label: string): void => {
  for (const line of pem.split(/\r?\n/)) {
    if (!line.startsWith("-----")) registerUnsafe(line.trim(), label)
  }
}

const SECRET_FIELD = /pass|secret|token|key|credential/i

/**
 * Registers a secret payload: a JSON object's secret-looking fields (password, token, key, …;
 * its other fields, like `username`, are printed legitimately), or the whole value otherwise.
 *
 * @since 0.1.0
 * @category registering
 */
export const registerPayload = (payload: string | Record<string, unknown>, label: string): Effect.Effect<void> =>
  Effect.sync(() => {
    const parsed = typeof payload === "string" ? parseObject(payload) : payload
    if (parsed === undefined) {
      if (typeof payload === "string") registerUnsafe(payload, label)
      return
    }
    for (const [field, value] of Object.entries(parsed)) {
      if (typeof value === "string" && SECRET_FIELD.test(field)) registerUnsafe(value, `${label} (${field})`)
    }
  })

const parseObject = (text: string): Record<string, unknown> | undefined => {
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value))
      : undefined
  } catch {
    return undefined
  }
}

/**
 * Appends output to the registry folder (the worker-side capture of stdout/stderr writes).
 *
 * @since 0.1.0
 * @category capturing
 */
export const appendOutputUnsafe = (dir: string, stream: string, text: string): void =>
  Fs.appendFileSync(Path.join(dir, `${OUTPUT_PREFIX}${stream}-${process.pid}.log`), text, { mode: 0o600 })

/**
 * Tees every write to `stream` into `record` (the stream still gets it); returns the undo.
 *
 * @since 0.1.0
 * @category capturing
 */
export const captureWrites = (stream: NodeJS.WriteStream, record: (text: string) => void): () => void => {
  const original = stream.write
  stream.write = (...args: Array<unknown>): boolean => {
    record(String(args[0]))
    return Reflect.apply(original, stream, args)
  }
  return () => void (stream.write = original)
}

/**
 * Every secret registered in the folder, by any process.
 *
 * @since 0.1.0
 * @category reading
 */
export const readSecrets = (dir: string): ReadonlyArray<Secret> =>
  filesWith(dir, SECRETS_PREFIX).flatMap((file) =>
    Fs.readFileSync(file, "utf8").split("\n").filter((line) => line !== "").map((line) => {
      const [label = "", value = ""] = line.split("\t")
      return { label: decode(label), value: decode(value) }
    })
  )

/**
 * Every output captured in the folder, each named by its file (stream and worker pid).
 *
 * @since 0.1.0
 * @category reading
 */
export const readOutputs = (dir: string): ReadonlyArray<Output> =>
  filesWith(dir, OUTPUT_PREFIX).map((file) => ({
    origin: Path.basename(file, ".log").slice(OUTPUT_PREFIX.length),
    text: Fs.readFileSync(file, "utf8")
  }))

const filesWith = (dir: string, prefix: string): ReadonlyArray<string> =>
  Fs.existsSync(dir)
    ? Fs.readdirSync(dir).filter((name) => name.startsWith(prefix)).map((name) => Path.join(dir, name))
    : []

/**
 * The base64 text of `bytes` placed at byte offset `shift` (0, 1, 2) of a longer encoded
 * stream, keeping only the characters that depend on `bytes` alone: what appears in any base64
 * text that contains them.
 */
const alignedBase64 = (bytes: Buffer, shift: number): string => {
  const encoded = Buffer.concat([Buffer.alloc(shift), bytes]).toString("base64").replace(/=+$/, "")
  const lead = [0, 2, 3][shift] ?? 0
  const trail = (shift + bytes.length) % 3 === 0 ? 0 : 1
  return encoded.slice(lead, encoded.length - trail)
}

/**
 * The forms a leaked secret takes in output, each with its encoding's name.
 *
 * @since 0.1.0
 * @category scanning
 */
export const variants = (value: string): ReadonlyArray<{ readonly encoding: string; readonly text: string }> => {
  const bytes = Buffer.from(value, "utf8")
  const uri = encodeURIComponent(value)
  const forms: Array<{ encoding: string; text: string }> = [
    { encoding: "plain", text: value },
    { encoding: "url-encoded", text: uri },
    { encoding: "url-encoded", text: uri.replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase()) },
    { encoding: "url-encoded", text: uri.replace(/%20/g, "+") },
    { encoding: "json-escaped", text: JSON.stringify(value).slice(1, -1) }
  ]
  for (const shift of [0, 1, 2]) {
    const standard = alignedBase64(bytes, shift)
    forms.push({ encoding: "base64", text: standard })
    forms.push({ encoding: "base64url", text: standard.replace(/\+/g, "-").replace(/\//g, "_") })
  }
  const seen = new Set<string>()
  return forms.filter((form) => form.text.length > 0 && !seen.has(form.text) && seen.add(form.text))
}

/**
 * Finds every registered secret in the outputs, in any of its {@link variants}. One pass per
 * output: needles are indexed by their first characters, so the cost does not grow with the
 * number of secrets.
 *
 * @since 0.1.0
 * @category scanning
 */
export const scan = (outputs: Iterable<Output>, secrets: ReadonlyArray<Secret>): ReadonlyArray<Leak> => {
  const needles = secrets.flatMap((secret) =>
    variants(secret.value).map((form) => ({ label: secret.label, encoding: form.encoding, text: form.text }))
  )
  const keyLength = needles.reduce((shortest, needle) => Math.min(shortest, needle.text.length), 8)
  const index = new Map<string, Array<(typeof needles)[number]>>()
  for (const needle of needles) {
    const key = needle.text.slice(0, keyLength)
    index.set(key, [...(index.get(key) ?? []), needle])
  }
  const leaks = new Map<string, Leak>()
  for (const output of outputs) {
    for (let at = 0; at + keyLength <= output.text.length; at++) {
      for (const needle of index.get(output.text.slice(at, at + keyLength)) ?? []) {
        if (output.text.startsWith(needle.text, at)) {
          const leak = { label: needle.label, encoding: needle.encoding, origin: output.origin }
          leaks.set(`${leak.label}\0${leak.encoding}\0${leak.origin}`, leak)
        }
      }
    }
  }
  return [...leaks.values()]
}

/**
 * A report of leaks that names each secret by its label (never its value).
 *
 * @since 0.1.0
 * @category scanning
 */
export const formatReport = (leaks: ReadonlyArray<Leak>): string =>
  [
    `[takumi leak guard] ${leaks.length} secret leak(s) in the test run's output:`,
    ...leaks.map((leak) => `  - ${leak.label}: ${leak.encoding} in ${leak.origin}`),
    "  Find the code that prints it (a log line, an error message, an inspect) and redact it."
  ].join("\n")
