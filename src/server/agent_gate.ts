/**
 * The agent endpoint (PROTO-6…PROTO-9): decides whether a WebSocket handshake on `service` may
 * become a domain's tunnel, in groom 1.3's order of checks, with its refusal statuses and logged
 * reasons. Fixed here: the secret is compared in constant time (ODD-9), a failed upgrade never
 * leaves the domain stuck "connecting" (ODD-3: nothing is reserved before the upgrade succeeds),
 * and a new agent with the right secret replaces a stale or half-open tunnel at once instead of
 * being locked out. Pure: the caller performs the upgrade.
 * @module
 */

import { matchSecret } from "../acl/mod.ts";
import { Subprotocol } from "../protocol/mod.ts";
import type { ServerDomain } from "./registry.ts";

/**
 * Sub-protocols this server speaks, most preferred first: protocol v2 (`groom2`, flow control,
 * issue 6), then groom 1.3's v1 (`groom`) for agents that offer only that.
 */
export const SUPPORTED_SUBPROTOCOLS: readonly string[] = [Subprotocol.V2, Subprotocol.V1];
/** PROTO-8: at most this many offered sub-protocol pieces are looked at. */
const MAX_OFFERED_SUBPROTOCOLS = 10;

/** What the agent endpoint answers. */
export type AgentVerdict =
  | {
    readonly ok: true;
    readonly domain: ServerDomain;
    readonly protocol: string;
    /** The tunnel this one replaces, if the domain was connected. */
    readonly replaces: boolean;
  }
  | {
    readonly ok: false;
    readonly status: number;
    /** Reason for the WARN error event; absent for refusals groom 1.3 does not log. */
    readonly reason?: string;
    readonly headers?: Record<string, string>;
  };

/** Request facts the gate needs, captured before any upgrade. */
export interface AgentRequest {
  readonly method: string;
  readonly headers: Headers;
  /** Peer `ip` (no port). */
  readonly peer: string;
  /** Domain name from Host, lower-cased, port removed. */
  readonly name: string;
}

/** Picks the sub-protocol: PROTO-8 splits on commas/spaces; we take our most preferred offer. */
export function selectSubprotocol(
  offered: string | null,
  supported: readonly string[] = SUPPORTED_SUBPROTOCOLS,
): string | undefined {
  const pieces = (offered ?? "").split(/[,\s]+/).filter((piece) => piece !== "").slice(
    0,
    MAX_OFFERED_SUBPROTOCOLS,
  );
  return supported.find((protocol) => pieces.includes(protocol));
}

/** Runs PROTO-7's checks in order and returns the verdict. */
export async function checkAgent(
  request: AgentRequest,
  options: {
    readonly lookup: (name: string) => ServerDomain | undefined;
    readonly unavailable: number;
    readonly readTextFile?: (path: string) => Promise<string>;
  },
): Promise<AgentVerdict> {
  const refuse = (reason: string): AgentVerdict => ({
    ok: false,
    status: options.unavailable,
    reason,
  });
  const authorization = request.headers.get("authorization") ?? "";
  const secret = authorization.startsWith("Bearer ") ? authorization.slice(7).trim() : "";
  if (secret === "") return refuse("agent authentication not provided"); // 1
  const domain = options.lookup(request.name);
  if (domain === undefined) return refuse("unknown domain"); // 2
  if (!domain.config.active) return refuse("inactive domain"); // 3
  const deps = options.readTextFile ? { readTextFile: options.readTextFile } : {};
  const { matched } = await matchSecret(secret, domain.config.secret, deps);
  if (!matched) return refuse("invalid agent authentication"); // 4
  if (!domain.agentNetworks.isEmpty && !domain.agentNetworks.matches(request.peer)) {
    return refuse("agent connection from unauthorized network"); // 5
  }
  // 6 ("already connected") is gone: the new, authenticated agent replaces the old tunnel.
  const connection = (request.headers.get("connection") ?? "").toLowerCase();
  const upgrade = (request.headers.get("upgrade") ?? "").toLowerCase();
  if (!connection.includes("upgrade") || upgrade !== "websocket") {
    return refuse("websocket upgrade failed"); // 7, with `unavailable` (ODD-37)
  }
  if (request.method !== "GET") return { ok: false, status: 405 }; // 8
  if (
    request.headers.get("sec-websocket-version") !== "13" ||
    !request.headers.get("sec-websocket-key")
  ) {
    return { ok: false, status: 400, headers: { "sec-websocket-version": "13" } }; // 9
  }
  const protocol = selectSubprotocol(request.headers.get("sec-websocket-protocol"));
  if (protocol === undefined) return { ok: false, status: 400 }; // 10
  return { ok: true, domain, protocol, replaces: domain.tunnel !== undefined };
}
