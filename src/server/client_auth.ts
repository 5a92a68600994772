/**
 * Client credentials (SRV-8 with ODD-9, ODD-10, ODD-18, ODD-19 fixed): HTTP Basic against the
 * domain's `clients.credentials`, then a session cookie bound to the domain and the login, so the
 * browser is not asked again. Missing credentials get 401 with the domain's banner as realm; wrong
 * ones count against the source address's failure budget, and once it is spent the address is
 * refused without a password check until the window passes (other addresses are unaffected).
 * @module
 */

import {
  credentialFingerprint,
  type FailureBudget,
  matchCredential,
  parseBasicAuth,
  readCookie,
  SESSION_COOKIE,
  type SessionSealer,
  sessionSetCookie,
} from "../acl/mod.ts";
import type { ServerDomain } from "./registry.ts";

/** What the proxy must do for an authenticated request. */
export interface ClientAuth {
  /** Remove `Authorization` before forwarding (it carried groom's Basic credentials). */
  readonly stripAuthorization: boolean;
  /** `Set-Cookie` value opening a session, added to the response. */
  readonly setCookie?: string;
}

/** The outcome of the credentials check. */
export type AuthDecision =
  | ({ readonly ok: true } & ClientAuth)
  | { readonly ok: false; readonly status: 401; readonly reason: string; readonly realm: string };

/** What the check needs. */
export interface AuthContext {
  readonly sealer: SessionSealer;
  readonly budget: FailureBudget;
  /** Session lifetime (`session_lifetime`). */
  readonly lifetimeMs: number;
  /** Current time in ms. */
  readonly now: () => number;
  /** Reads `@file` credential lists (default: the file system). */
  readonly readTextFile?: (path: string) => Promise<string>;
}

/** The 401 answer of a refused client (SRV-8: the banner as realm, quotes escaped). */
export function unauthorized(realm: string): Response {
  const quoted = realm.replaceAll("\\", "\\\\").replaceAll('"', '\\"');
  return new Response(null, {
    status: 401,
    headers: { "www-authenticate": `Basic realm="${quoted}"` },
  });
}

/** Checks a client's credentials for a domain that has `clients.credentials`. */
export async function authenticateClient(
  request: Request,
  peer: string,
  domain: ServerDomain,
  context: AuthContext,
): Promise<AuthDecision> {
  const entries = domain.config.clientsCredentials;
  if (entries.length === 0) return { ok: true, stripAuthorization: false };
  const realm = domain.config.clientsBanner;
  const token = readCookie(request.headers.get("cookie"), SESSION_COOKIE);
  if (token !== undefined) {
    const claims = context.sealer.open(token, domain.name);
    if (claims && claims.fingerprint === credentialFingerprint(claims.login, entries)) {
      return { ok: true, stripAuthorization: false };
    }
  }
  const header = request.headers.get("authorization");
  if (header === null || !/^basic /i.test(header)) {
    return { ok: false, status: 401, reason: "credentials required", realm };
  }
  if (context.budget.blocked(peer)) {
    return { ok: false, status: 401, reason: "too many authentication failures", realm };
  }
  const { login, password } = parseBasicAuth(header);
  const deps = context.readTextFile ? { readTextFile: context.readTextFile } : {};
  const { matched } = await matchCredential(login, password, entries, deps);
  if (!matched) {
    const spent = context.budget.fail(peer);
    return {
      ok: false,
      status: 401,
      reason: spent ? "invalid credentials; failure budget spent" : "invalid credentials",
      realm,
    };
  }
  context.budget.succeed(peer);
  const trimmed = login.trim();
  const expires = Math.floor((context.now() + context.lifetimeMs) / 1000);
  const sealed = context.sealer.seal({
    domain: domain.name,
    login: trimmed,
    fingerprint: credentialFingerprint(trimmed, entries),
    expires,
  });
  return {
    ok: true,
    stripAuthorization: true,
    setCookie: sessionSetCookie(sealed, context.lifetimeMs / 1000),
  };
}
