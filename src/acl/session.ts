/**
 * Session cookies for clients that passed HTTP Basic authentication (SRV-8 with ODD-10 fixed):
 * instead of groom 1.3's one static seal per (process, domain), each cookie is a token bound to
 * the domain and the user, with an expiry and a fingerprint of the user's credential entries,
 * sealed with HMAC-SHA-256. A per-process random key by default; a configured key lets several
 * servers accept each other's cookies. Pure apart from the injected clock.
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** The cookie name: `__Host-` makes browsers require Secure, Path=/ and no Domain attribute. */
export const SESSION_COOKIE = "__Host-groom";
/** Longest token accepted; a real one is about 200 bytes. Bounds the work done on hostile input. */
export const MAX_SESSION_TOKEN_LENGTH = 1024;
/** Token format version, so a future layout can be told apart. */
const TOKEN_VERSION = 1;

/** What a session token says. */
export interface SessionClaims {
  /** Domain the session is valid for. */
  readonly domain: string;
  /** The authenticated login. */
  readonly login: string;
  /** Fingerprint of the login's credential entries when the session was opened. */
  readonly fingerprint: string;
  /** Expiry, seconds since the epoch. */
  readonly expires: number;
}

/** Seals and opens session tokens with one key. */
export interface SessionSealer {
  /** A token for these claims. */
  seal(claims: SessionClaims): string;
  /** The claims of a genuine, unexpired token for `domain`, else `undefined`. */
  open(token: string, domain: string): SessionClaims | undefined;
}

/** Derives the HMAC key: from a configured secret (shared by servers) or random per process. */
export function sessionKey(configured: string): Uint8Array {
  return configured === ""
    ? randomBytes(32)
    : createHash("sha256").update(`groom session key\0${configured}`).digest();
}

/** Creates a sealer; `now` returns milliseconds since the epoch. */
export function createSessionSealer(
  key: Uint8Array,
  now: () => number = Date.now,
): SessionSealer {
  const mac = (data: string) => createHmac("sha256", key).update(data).digest();
  return {
    seal(claims) {
      const payload = Buffer.from(JSON.stringify([
        TOKEN_VERSION,
        claims.domain,
        claims.login,
        claims.fingerprint,
        claims.expires,
      ])).toString("base64url");
      return `${payload}.${mac(payload).toString("base64url")}`;
    },
    open(token, domain) {
      if (token.length > MAX_SESSION_TOKEN_LENGTH) return undefined;
      const dot = token.indexOf(".");
      if (dot <= 0) return undefined;
      const payload = token.slice(0, dot);
      const given = Buffer.from(token.slice(dot + 1), "base64url");
      const expected = mac(payload);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
      let fields: unknown;
      try {
        fields = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
      } catch {
        return undefined;
      }
      if (!Array.isArray(fields) || fields.length !== 5 || fields[0] !== TOKEN_VERSION) {
        return undefined;
      }
      const [, tokenDomain, login, fingerprint, expires] = fields;
      if (
        tokenDomain !== domain || typeof login !== "string" || typeof fingerprint !== "string" ||
        typeof expires !== "number" || expires * 1000 <= now()
      ) {
        return undefined;
      }
      return { domain, login, fingerprint, expires };
    },
  };
}

/**
 * Fingerprint of the credential entries that can authenticate `login`: its own `login:` entries
 * and every `@file` entry. Changing or removing one of them changes the fingerprint, which ends
 * the login's sessions at the next reload; other users' sessions stay valid.
 */
export function credentialFingerprint(login: string, entries: readonly string[]): string {
  const relevant = entries.map((entry) => entry.trim()).filter((entry) =>
    entry.startsWith("@") || entry.slice(0, Math.max(0, entry.indexOf(":"))).trim() === login
  );
  return createHash("sha256").update(JSON.stringify(relevant)).digest("base64url").slice(0, 22);
}

/** The value of cookie `name` in a `Cookie` header, if present. */
export function readCookie(header: string | null, name: string): string | undefined {
  if (header === null) return undefined;
  for (const piece of header.split(";")) {
    const eq = piece.indexOf("=");
    if (eq > 0 && piece.slice(0, eq).trim() === name) return piece.slice(eq + 1).trim();
  }
  return undefined;
}

/** A `Cookie` header without cookie `name` (exact name match, ODD-18), or `undefined` if empty. */
export function withoutCookie(header: string, name: string): string | undefined {
  const kept = header.split(";").map((piece) => piece.trim()).filter((piece) => {
    const eq = piece.indexOf("=");
    return piece !== "" && (eq < 0 ? piece : piece.slice(0, eq).trim()) !== name;
  });
  return kept.length === 0 ? undefined : kept.join("; ");
}

/** The `Set-Cookie` value opening a session (Secure, HttpOnly, SameSite=Lax; ODD-10). */
export function sessionSetCookie(token: string, lifetimeSeconds: number): string {
  return `${SESSION_COOKIE}=${token}; Path=/; Max-Age=${Math.floor(lifetimeSeconds)}; ` +
    "Secure; HttpOnly; SameSite=Lax";
}
