/**
 * The statement text a `SlowQuery` alert shows: the statement as PostgreSQL's own scanner reads
 * it, with no literal left in it, or, without that scanner, nothing of it but its first keyword
 * and a fingerprint.
 *
 * The scanner is libpg-query's (`scanSync`: PostgreSQL's scanner compiled to WebAssembly, an
 * optional peer loaded on the first slow statement). The text is rebuilt from its tokens keeping
 * only keywords, identifiers, operators, punctuation and `$n` parameters: every other token — a
 * string in any quoting (`'…'`, `E'…'`, `U&'…'`, `$tag$…$tag$`), a number, a bit string — becomes
 * `?`, and comments are dropped. Regular expressions cannot do this: an apostrophe in a comment or
 * in a quoted identifier shifted the ones this replaces, and the next literal (a card number) was
 * logged. The scanner reads every such text as the server does.
 *
 * Without libpg-query, or for a text the scanner refuses, the alert shows a command keyword from a
 * fixed list and a keyed fingerprint of the text (see `fingerprint`): nothing a misread could turn
 * into a literal.
 *
 * Runs only for a statement past the slow-query threshold, never on the per-statement path.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Crypto from "node:crypto"

/** The part of libpg-query the alert uses. */
export interface Lexer {
  /** PostgreSQL's scanner over `sql`: `{ tokens: [...] }`, or a throw for a text it refuses */
  readonly scanSync: (sql: string) => unknown
}

/** The optional peer and the range whose scanner the code reads (`scanSync` came with 18). */
export const packageName = "libpg-query"
export const peerRange = "^18.1.5"

/** The longest text an alert shows. */
export const maxLength = 200

/**
 * How much of a statement the scanner reads: 20 times what an alert shows, so comments and
 * whitespace rarely leave it short, and at most a few milliseconds of scanning (it costs about
 * 2 µs a token). A text cut inside a literal or a comment is refused and falls back.
 */
export const scanLimit = 4096

/** One token of `scanSync`; `start` and `end` are byte offsets, only compared with each other. */
interface Token {
  readonly text: string
  readonly tokenName: string
  readonly keywordName: string
  readonly start: number
  readonly end: number
}

const isToken = (u: unknown): u is Token =>
  typeof u === "object" && u !== null &&
  "text" in u && typeof u.text === "string" &&
  "tokenName" in u && typeof u.tokenName === "string" &&
  "keywordName" in u && typeof u.keywordName === "string" &&
  "start" in u && typeof u.start === "number" &&
  "end" in u && typeof u.end === "number"

const tokensOf = (scanned: unknown): Option.Option<ReadonlyArray<Token>> => {
  if (typeof scanned !== "object" || scanned === null || !("tokens" in scanned)) return Option.none()
  const tokens: unknown = scanned.tokens
  return Array.isArray(tokens) && tokens.every(isToken) ? Option.some(tokens) : Option.none()
}

// What may be shown, by the token's text (the scanner names only some token kinds, e.g. it
// reports `U&'…'` and `B'…'` as UNKNOWN): anything that is not one of these is blanked.
// PostgreSQL identifiers start with a letter, `_` or any non-ASCII character.
const unquotedName = /^[A-Za-z_\u{80}-\u{10FFFF}][A-Za-z0-9_$\u{80}-\u{10FFFF}]*$/u
const quotedName = /^(?:[Uu]&)?"(?:[^"]|"")*"$/
// A quoted name is shown only when it holds no digit or backslash: to PostgreSQL `" '4111…' "` is
// a name too, and hostile text can turn a literal into one.
const plainQuotedName = /^(?:[Uu]&)?"(?:[^"\\0-9]|"")*"$/
// a statement has at most 65535 parameters: `$` and more digits is no parameter the server takes
const parameter = /^\$[0-9]{1,5}$/
const operator = /^[-+*/<>=~!@#%^&|`?]+$/
const punctuation = /^(?:[,()[\];:.]|::|:=|=>|\.\.)$/

type Kind = "shown" | "blanked" | "comment" | "ambiguous"

const kindOf = (token: Token): Kind => {
  const text = token.text
  if (token.tokenName === "SQL_COMMENT" || token.tokenName === "C_COMMENT") return "comment"
  if (text.startsWith("--") || text.startsWith("/*")) return "comment"
  // a bare word is shown only when the scanner says it is a name or a keyword
  if (unquotedName.test(text)) return token.tokenName === "IDENT" || token.keywordName !== "NO_KEYWORD" ? "shown" : "blanked"
  if (quotedName.test(text)) return plainQuotedName.test(text) ? "shown" : "blanked"
  if (parameter.test(text) || operator.test(text) || punctuation.test(text)) return "shown"
  // The scanner reads with standard_conforming_strings on (the default since PostgreSQL 9.1). A
  // server with it off reads a backslash in '…' as an escape, so that literal may end later than
  // the scanner thinks: the tokens after it are not shown.
  if (text.startsWith("'") && text.includes("\\")) return "ambiguous"
  return "blanked"
}

/** The first `length` UTF-16 units, one less rather than half of a surrogate pair. */
const cutTo = (text: string, length: number): string => {
  const last = text.charCodeAt(length - 1)
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? length - 1 : length)
}

/** The scanner's reading, literals blanked; none when it refuses the text. */
const normalised = (lexer: Lexer, text: string): Option.Option<string> => {
  const longer = text.length > scanLimit
  const scanned = Either.try(() => lexer.scanSync(longer ? text.slice(0, scanLimit) : text))
  // a refusal (an unterminated quote or comment, trailing junk after a number) is the fallback's case
  if (Either.isLeft(scanned)) return Option.none()
  const tokens = tokensOf(scanned.right)
  if (Option.isNone(tokens)) return Option.none()
  let shown = ""
  let previousEnd = Number.POSITIVE_INFINITY
  let space = false
  let truncated = longer
  for (const token of tokens.value) {
    const kind = kindOf(token)
    space = space || token.start > previousEnd
    previousEnd = token.end
    if (kind === "comment") {
      space = true
      continue
    }
    shown += `${shown.length > 0 && space ? " " : ""}${kind === "shown" ? token.text : "?"}`
    space = false
    if (kind === "ambiguous" || shown.length > maxLength) {
      truncated = true
      break
    }
  }
  if (shown.length === 0) return Option.some("(comments only)")
  return Option.some(truncated ? `${cutTo(shown, Math.min(shown.length, maxLength - 1))}…` : shown)
}

/** The words a PostgreSQL command can start with: the fallback shows one of these or none. */
const commandKeywords: ReadonlySet<string> = new Set([
  "ABORT", "ALTER", "ANALYSE", "ANALYZE", "BEGIN", "CALL", "CHECKPOINT", "CLOSE", "CLUSTER", "COMMENT",
  "COMMIT", "COPY", "CREATE", "DEALLOCATE", "DECLARE", "DELETE", "DISCARD", "DO", "DROP", "END",
  "EXECUTE", "EXPLAIN", "FETCH", "GRANT", "IMPORT", "INSERT", "LISTEN", "LOAD", "LOCK", "MERGE", "MOVE",
  "NOTIFY", "PREPARE", "REASSIGN", "REFRESH", "REINDEX", "RELEASE", "RESET", "REVOKE", "ROLLBACK",
  "SAVEPOINT", "SECURITY", "SELECT", "SET", "SHOW", "START", "TABLE", "TRUNCATE", "UNLISTEN", "UPDATE",
  "VACUUM", "VALUES", "WITH"
])

/** Where the (nested) block comment opening at `from` ends, or -1 when it does not. */
const blockCommentEnd = (text: string, from: number): number => {
  let depth = 0
  let i = from
  while (i < text.length) {
    if (text.startsWith("/*", i)) {
      depth++
      i += 2
    } else if (text.startsWith("*/", i)) {
      depth--
      i += 2
      if (depth === 0) return i
    } else {
      i++
    }
  }
  return -1
}

/**
 * The command keyword the statement starts with, after whitespace, comments and opening
 * parentheses; none when it is not one of `commandKeywords`. Only a word of that fixed list is
 * ever returned, so a misread of the text can cost the keyword, never show a literal.
 */
export const firstKeyword = (text: string): Option.Option<string> => {
  const head = text.slice(0, scanLimit)
  let i = 0
  while (i < head.length) {
    if (/[\s(]/.test(head[i] ?? "")) {
      i++
    } else if (head.startsWith("--", i)) {
      const lineEnd = head.slice(i).search(/[\n\r]/)
      if (lineEnd < 0) return Option.none()
      i += lineEnd + 1
    } else if (head.startsWith("/*", i)) {
      i = blockCommentEnd(head, i)
      if (i < 0) return Option.none()
    } else {
      break
    }
  }
  const word = /^[A-Za-z]+/.exec(head.slice(i))?.[0]?.toUpperCase()
  return word !== undefined && commandKeywords.has(word) ? Option.some(word) : Option.none()
}

/**
 * A fingerprint of the whole text: HMAC-SHA-256 under the monitor's key, 64 bits in hex. Keyed,
 * because a plain hash would give a literal away to anyone hashing candidates for it (a card
 * number has few unknown digits once the statement's shape is known). So it is the same for
 * repeats of a statement while the client layer lives, and not comparable across processes.
 */
export const fingerprint = (text: string, key: Uint8Array): string =>
  Crypto.createHmac("sha256", key).update(text).digest("hex").slice(0, 16)

/**
 * The statement as a `SlowQuery` alert shows it: with a lexer, the scanner's reading with every
 * constant `?`, comments dropped, whitespace collapsed, at most `maxLength` characters (`…` when
 * cut); otherwise, or when the scanner refuses the text, `KEYWORD … (fingerprint …; text
 * withheld: why)`.
 */
export const slowQueryText = (text: string, lexer: Option.Option<Lexer>, fingerprintKey: Uint8Array): string =>
  Option.flatMap(lexer, (l) => normalised(l, text)).pipe(
    Option.getOrElse(() => {
      const keyword = Option.getOrElse(firstKeyword(text), () => "?")
      const why = Option.isSome(lexer)
        ? "PostgreSQL's scanner did not read it to the end (an unterminated quote or comment)"
        : `install ${packageName}@${peerRange} to see it with its constants blanked`
      return `${keyword} … (fingerprint ${fingerprint(text, fingerprintKey)}; text withheld: ${why})`
    })
  )

// ESM `import()` reports a missing package as ERR_MODULE_NOT_FOUND, CommonJS `require` as MODULE_NOT_FOUND.
const notInstalledCodes = new Set(["ERR_MODULE_NOT_FOUND", "MODULE_NOT_FOUND"])

const codeOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined

interface LexerModule {
  readonly loadModule: () => Promise<unknown>
  readonly scanSync: (sql: string) => unknown
}

const isLexerModule = (u: unknown): u is LexerModule =>
  typeof u === "object" && u !== null &&
  "loadModule" in u && typeof u.loadModule === "function" &&
  "scanSync" in u && typeof u.scanSync === "function"

// A specifier in a variable: the package need not be installed to compile @takumi/db, nor to run
// it. Its shape is checked once loaded (13 to 17 have no scanner), hence no types are needed.
const specifier: string = packageName

/**
 * libpg-query's scanner, when the package is installed: imported and its WebAssembly module
 * instantiated (about 25 ms and 16 MB once). None when it is not installed (the fallback is
 * documented; logged at debug level) or cannot be used (logged as a warning with the error code
 * only, never the error object).
 */
export const loadLexer: Effect.Effect<Option.Option<Lexer>> = Effect.tryPromise({
  try: (): Promise<unknown> => import(specifier),
  catch: (error) => error
}).pipe(
  Effect.flatMap((module) =>
    isLexerModule(module)
      ? Effect.tryPromise({ try: () => module.loadModule(), catch: (error) => error }).pipe(
        Effect.as(Option.some<Lexer>({ scanSync: (sql) => module.scanSync(sql) }))
      )
      : Effect.as(
        Effect.logWarning(
          `The installed ${packageName} has no scanner (scanSync, from version 18): SlowQuery alerts show only ` +
            `the first keyword and a fingerprint of a statement. Fix: npm install ${packageName}@${peerRange}`
        ),
        Option.none()
      )
  ),
  Effect.catchAll((error) => {
    const code = codeOf(error)
    return Effect.as(
      code !== undefined && notInstalledCodes.has(code)
        ? Effect.logDebug(
          `${packageName} is not installed: SlowQuery alerts show only the first keyword and a fingerprint of a statement`
        )
        : Effect.logWarning(
          `${packageName} could not be loaded (${code ?? "no error code"}): SlowQuery alerts show only the first ` +
            `keyword and a fingerprint of a statement. Fix: reinstall it: npm install ${packageName}@${peerRange}`
        ),
      Option.none()
    )
  })
)
