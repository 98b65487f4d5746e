/**
 * Which of the listed hosts a new connection goes to (`DB_HOST` with several hosts, or
 * `DB_TARGET_SESSION_ATTRS` other than `any`): libpq's `target_session_attrs` and
 * `load_balance_hosts`, for a pool.
 *
 * libpq decides per connection, trying the hosts one after the other. A pool opens many
 * connections to the same server, so the chooser remembers the hosts found to fit and sends new
 * connections there; it looks again (a scan) only when it knows of none: at the first connection,
 * and after a connection to a remembered host failed or found itself unfit (the primary went away,
 * a standby was promoted elsewhere). A scan probes every listed host at once — one connection each,
 * closed straight away, so a blackholed host costs one connect timeout, not one per host — and
 * takes the first that fits in the listed order as soon as every host before it has answered or
 * failed (`disable`), or waits for all and picks among those that fit at random for each
 * connection (`random`, and `prefer-standby`, which must know whether any standby answered).
 * Concurrent connections share one scan.
 *
 * @internal
 */
import type { LoadBalanceHosts, TargetSessionAttrs } from "@takumi/config"
import type * as Tls from "node:tls"
import { isAuthenticationFailure } from "../classify.js"
import { fits, isWritable, NoSuitableHostCause, type SessionState } from "./session.js"

/** One listed host, with the TLS options whose identity check names it. */
export interface HostRoute {
  readonly host: string
  readonly port: number
  readonly ssl: Tls.ConnectionOptions | false
}

/** What a scan saw at one host (`R`: how the host is named; the doctor's report has no TLS options). */
export type Seen<R = HostRoute> =
  | { readonly route: R; readonly state: SessionState }
  | { readonly route: R; readonly error: unknown }

const where = (route: Pick<HostRoute, "host" | "port">): string => `${route.host}:${route.port}`

const describeSeen = (seen: Seen): string => {
  if ("state" in seen) {
    const kind = seen.state.hotStandby ? "a hot standby" : isWritable(seen.state) ? "writable" : "read-only"
    return `${where(seen.route)} is ${kind}`
  }
  const message = seen.error instanceof Error ? seen.error.message : String(seen.error)
  return `${where(seen.route)} failed (${message})`
}

/** The hosts of a scan that fit, in order; `prefer-standby` takes the standbys when any answered. */
export const fittingOf = <R>(attrs: TargetSessionAttrs, seen: ReadonlyArray<Seen<R>>): ReadonlyArray<R> => {
  const answered = seen.flatMap((s) => "state" in s ? [s] : [])
  const standbys = answered.filter((s) => s.state.hotStandby)
  const pool = attrs === "prefer-standby" && standbys.length > 0 ? standbys : answered
  return pool.filter((s) => fits(attrs, s.state)).map((s) => s.route)
}

/**
 * Why a scan found nothing: when no host answered at all, the error of one of them as pg gave it
 * (so that it is classified, and a 28P01 retried with a re-read secret, as for a single host) —
 * an authentication failure when there was one, else the first host's; otherwise `NoSuitableHostCause`.
 */
export const scanFailure = (attrs: TargetSessionAttrs, seen: ReadonlyArray<Seen>): unknown => {
  const errors = seen.flatMap((s) => "error" in s ? [s.error] : [])
  if (errors.length === seen.length && errors.length > 0) {
    return errors.find(isAuthenticationFailure) ?? errors[0]
  }
  return new NoSuitableHostCause(attrs, seen.map(describeSeen))
}

/** What the chooser needs. */
export interface ChooserOptions {
  readonly attrs: TargetSessionAttrs
  readonly loadBalance: LoadBalanceHosts
  readonly routes: ReadonlyArray<HostRoute>
  /** opens a connection to the host, reads its state and closes it */
  readonly probe: (route: HostRoute) => Promise<SessionState>
  /** uniform in [0, 1) */
  readonly random: () => number
  /** a connection found a writable server other than the last one (never called for the first) */
  readonly onPrimaryChanged: (from: HostRoute, to: HostRoute) => void
}

/** The chooser of one pool. */
export interface HostChooser {
  readonly attrs: TargetSessionAttrs
  /** where the next connection goes: a remembered host, or the result of a scan; rejects when none fits */
  readonly choose: () => Promise<HostRoute>
  /** whether a connected session may stay */
  readonly accepts: (state: SessionState) => boolean
  /** a connection to the host failed, or found it unfit: it is forgotten until a scan finds it again */
  readonly forget: (route: HostRoute) => void
  /** a connection to the host is established and fits */
  readonly confirmed: (route: HostRoute, state: SessionState) => void
  /** the writable host the last connection confirmed, if any */
  readonly currentWritable: () => HostRoute | undefined
  /** the host of the last connection established, whatever it is */
  readonly lastConnected: () => HostRoute | undefined
}

const shuffled = <A>(items: ReadonlyArray<A>, random: () => number): ReadonlyArray<A> => {
  const copy = [...items]
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const a = copy[i] as A
    copy[i] = copy[j] as A
    copy[j] = a
  }
  return copy
}

/** Makes the chooser of one pool. */
export const makeChooser = (options: ChooserOptions): HostChooser => {
  let fitting: ReadonlyArray<HostRoute> = []
  let scanning: Promise<ReadonlyArray<HostRoute>> | undefined = undefined
  let writable: HostRoute | undefined = undefined
  let connected: HostRoute | undefined = undefined

  const scan = async (): Promise<ReadonlyArray<HostRoute>> => {
    const order = options.loadBalance === "random" ? shuffled(options.routes, options.random) : options.routes
    const probes = order.map((route) =>
      options.probe(route).then(
        (state): Seen => ({ route, state }),
        (error: unknown): Seen => ({ route, error })
      )
    )
    if (options.loadBalance === "disable" && options.attrs !== "prefer-standby") {
      // the first fitting host in the listed order: no need to wait for the hosts after it
      const seen: Array<Seen> = []
      for (const probe of probes) {
        const result = await probe
        seen.push(result)
        if ("state" in result && fits(options.attrs, result.state)) return [result.route]
      }
      throw scanFailure(options.attrs, seen)
    }
    const seen = await Promise.all(probes)
    const found = fittingOf(options.attrs, seen)
    if (found.length === 0) throw scanFailure(options.attrs, seen)
    return found
  }

  const pick = (routes: ReadonlyArray<HostRoute>): HostRoute => {
    const index = options.loadBalance === "random" ? Math.floor(options.random() * routes.length) : 0
    return routes[Math.min(index, routes.length - 1)] as HostRoute
  }

  return {
    attrs: options.attrs,
    choose: async () => {
      if (fitting.length > 0) return pick(fitting)
      scanning ??= scan().finally(() => {
        scanning = undefined
      })
      fitting = await scanning
      return pick(fitting)
    },
    accepts: (state) => fits(options.attrs, state),
    forget: (route) => {
      fitting = fitting.filter((r) => r !== route)
    },
    confirmed: (route, state) => {
      connected = route
      if (!isWritable(state) || writable === route) return
      const previous = writable
      writable = route
      if (previous !== undefined) options.onPrimaryChanged(previous, route)
    },
    currentWritable: () => writable,
    lastConnected: () => connected
  }
}
