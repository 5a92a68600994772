/**
 * The request router of every listener (SRV-1…SRV-7): canonical paths, refused methods, the agent
 * endpoint, and client requests for a domain, with the stealth rules of SRV-21: a client learns
 * nothing about domains it may not use, only the log says why. Pure apart from what the context
 * provides, so it is tested with plain `Request` objects.
 * @module
 */

import type { ServerDomain } from "./registry.ts";
import type { ClientInfo } from "./client_proxy.ts";
import { type AuthDecision, type ClientAuth, unauthorized } from "./client_auth.ts";

/** Everything the router needs; `server/mod.ts` provides it. */
export interface RouterContext {
  /** Agent endpoint path (`service`). */
  readonly service: () => string;
  /** Status of stealth refusals (`unavailable`). */
  readonly unavailable: () => number;
  /** Whether refusals for unavailable domains are access-logged (`log.disconnected`). */
  readonly logDisconnected: () => boolean;
  /** The domain of that name, if loaded. */
  lookup(name: string): ServerDomain | undefined;
  /** Handles the agent endpoint. */
  agent(request: Request, client: ClientInfo): Promise<Response>;
  /** Checks the client's credentials (SRV-8). */
  authenticate(request: Request, client: ClientInfo, domain: ServerDomain): Promise<AuthDecision>;
  /** Proxies a client request to the domain's agent. */
  proxy(
    request: Request,
    client: ClientInfo,
    domain: ServerDomain,
    auth: ClientAuth,
  ): Promise<Response>;
  /** Access record for a refusal decided here (SRV-5…SRV-7). */
  refused(request: Request, client: ClientInfo, status: number, reason: string): void;
  /** The current time (injected for the time-range tests). */
  now(): Date;
}

/** Splits a Host value into name and port (SRV-3): IPv6 brackets kept, port `443` by default. */
export function splitHost(host: string): { name: string; port: string } {
  const trimmed = host.trim().toLowerCase();
  const bracketed = /^(\[[^\]]*\])(?::(\d*))?$/.exec(trimmed);
  if (bracketed) return { name: bracketed[1] ?? "", port: bracketed[2] || "443" };
  const colon = trimmed.lastIndexOf(":");
  if (colon >= 0 && trimmed.indexOf(":") === colon) {
    return { name: trimmed.slice(0, colon), port: trimmed.slice(colon + 1) || "443" };
  }
  return { name: trimmed, port: "443" };
}

/**
 * The canonical form of a URL path (SRV-1, Go's `path.Clean` plus a kept trailing slash), or
 * `undefined` when the path already is canonical.
 */
export function canonicalPath(path: string): string | undefined {
  if (!/\/\/|\/\.\.?(\/|$)/.test(path)) return undefined;
  const out: string[] = [];
  const segments = path.split("/");
  for (const segment of segments.slice(1)) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") out.pop();
    else out.push(segment);
  }
  let cleaned = "/" + out.join("/");
  if ((path.endsWith("/") || path.endsWith("/.") || path.endsWith("/..")) && cleaned !== "/") {
    cleaned += "/";
  }
  return cleaned === path ? undefined : cleaned;
}

/** Routes one request. `remoteAddr` must be captured before anything consumes the request. */
export async function route(
  request: Request,
  remoteAddr: { hostname: string; port: number },
  context: RouterContext,
): Promise<Response> {
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    // Deno builds the URL from the Host header lazily: a Host that is no valid authority
    // (`a b`, `a<b`, `[::1`) throws here. No domain has such a name (RFC 9112 §3.2: 400).
    return new Response(null, { status: 400 });
  }
  if (request.method === "CONNECT" || request.method === "TRACE") {
    return new Response(null, { status: 405 }); // SRV-2
  }
  const cleaned = canonicalPath(url.pathname);
  if (cleaned !== undefined) {
    return new Response(null, { status: 301, headers: { location: cleaned + url.search } });
  }
  const { name, port } = splitHost(request.headers.get("host") ?? url.host);
  const now = Date.now();
  const client: ClientInfo = {
    remoteAddr,
    name,
    port,
    start: now,
    startMark: performance.now(),
    target: url.pathname + url.search, // parsed once per request (issue 7)
  };
  if (url.pathname === context.service()) return context.agent(request, client);

  const unavailable = () => new Response(null, { status: context.unavailable() });
  const domain = context.lookup(name);
  if (domain === undefined || !domain.config.active || domain.tunnel === undefined) {
    // SRV-5: logged as 404 whatever `unavailable` is, and only when asked for.
    if (context.logDisconnected()) context.refused(request, client, 404, "disconnected domain");
    return unavailable();
  }
  const peer = remoteAddr.hostname;
  if (!domain.clientNetworks.isEmpty && !domain.clientNetworks.matches(peer)) {
    context.refused(request, client, 403, "unauthorized network"); // SRV-6
    return unavailable();
  }
  if (!domain.clientRanges.isEmpty && !domain.clientRanges.matches(context.now())) {
    context.refused(request, client, 403, "unauthorized timerange"); // SRV-7
    return unavailable();
  }
  const auth = await context.authenticate(request, client, domain); // SRV-8: a real 401
  if (!auth.ok) {
    context.refused(request, client, 401, auth.reason);
    return unauthorized(auth.realm);
  }
  return context.proxy(request, client, domain, auth);
}
