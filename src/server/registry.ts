/**
 * The server's live view of its domains: each domain's settings as last loaded, the ACLs compiled
 * from them, and the agent tunnel attached to it, if any. State only: the decisions about who may
 * connect live in `agent_gate.ts`, the request path in `client_proxy.ts`.
 * @module
 */

import {
  compileNetworks,
  compileTimeRanges,
  type NetworkList,
  type TimeRangeList,
} from "../acl/mod.ts";
import type { ServerDomainConfig } from "../config/mod.ts";

/** An attached agent tunnel, as the registry sees it. */
export interface AttachedTunnel {
  /** The agent's address `ip:port` (PROTO-9). */
  readonly remote: string;
  /** Negotiated sub-protocol. */
  readonly protocol: string;
  /** Closes the tunnel (all its streams end). */
  close(code: number, reason: string): void;
}

/** PROTO-17's stream id counter: per domain, surviving reconnections. */
export interface StreamIdCounter {
  /** The last id handed out. */
  last: number;
}

/** One domain of the server. */
export interface ServerDomain<T extends AttachedTunnel = AttachedTunnel> {
  /** Lower-cased domain name. */
  readonly name: string;
  /** Settings as last loaded. */
  config: ServerDomainConfig;
  /** Agent networks (PROTO-7 #5), compiled once per load. */
  agentNetworks: NetworkList;
  /** Client networks (SRV-6), compiled once per load. */
  clientNetworks: NetworkList;
  /** Client time windows (SRV-7), compiled once per load. */
  clientRanges: TimeRangeList;
  /** Peers trusted to supply X-Forwarded-For (SRV-9). */
  forwarders: NetworkList;
  /** The connected agent, if any. */
  tunnel: T | undefined;
  /** Stream id counter (PROTO-17). */
  readonly ids: StreamIdCounter;
}

/** Creates the registry entry for a freshly loaded domain. */
export function createDomain<T extends AttachedTunnel>(
  config: ServerDomainConfig,
): ServerDomain<T> {
  const domain: ServerDomain<T> = {
    name: config.name.toLowerCase(),
    config,
    ...compileAcls(config),
    tunnel: undefined,
    ids: { last: 0 },
  };
  return domain;
}

/** Replaces a domain's settings and recompiled ACLs; the tunnel and id counter stay. */
export function updateDomain<T extends AttachedTunnel>(
  domain: ServerDomain<T>,
  config: ServerDomainConfig,
): void {
  domain.config = config;
  Object.assign(domain, compileAcls(config));
}

function compileAcls(config: ServerDomainConfig) {
  return {
    agentNetworks: compileNetworks(config.networks),
    clientNetworks: compileNetworks(config.clientsNetworks),
    clientRanges: compileTimeRanges(config.clientsRanges),
    forwarders: compileNetworks(config.forward),
  };
}

/**
 * Why a connected agent no longer qualifies after an update of its domain file, or `undefined`
 * when it still does. Unlike groom 1.3 (ODD-12), a changed secret or agent network list closes
 * the tunnel at once; the agent reconnects with the new values.
 */
export function tunnelInvalidation(
  previous: ServerDomainConfig,
  next: ServerDomainConfig,
): string | undefined {
  if (!next.active) return "domain deactivated";
  if (previous.secret !== next.secret) return "agent secret changed";
  if (JSON.stringify(previous.networks) !== JSON.stringify(next.networks)) {
    return "agent networks changed";
  }
  return undefined;
}
