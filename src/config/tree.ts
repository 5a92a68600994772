/**
 * Dotted-path lookups in a parsed configuration tree, exactly as groom 1.3 does them (CFG-14,
 * CFG-15): segments are trimmed, array segments are decimal in-bounds indexes, a scalar lookup
 * succeeds only on a JSON string, and child enumeration lists array items in order and object
 * keys. A list directive written as a single string yields no entry, as in the original, but the
 * list lookup also reports it, since it is almost always a mistake. Pure functions only.
 * @module
 */

import type { ConfValue } from "./syntax.ts";

/** Array index segment of a path (CFG-14): decimal digits only. */
const INDEX_REGEXP = /^\d+$/;

/** The child paths of a list directive, plus a warning when the value is not a list. */
export interface ListLookup {
  /** `path.0 … path.n-1` for an array, `path.<key>` for an object, nothing otherwise. */
  readonly paths: readonly string[];
  /** Set when the path holds a scalar (typically `listen = "…"` instead of `[ "…" ]`). */
  readonly warning?: string;
}

/** Splits a dotted path into trimmed segments; the empty path has no segment. */
export function splitPath(path: string): string[] {
  return path === "" ? [] : path.split(".").map((segment) => segment.trim());
}

/** Joins path segments with dots, skipping empty ones (`joinPath("groom", "log")`). */
export function joinPath(...segments: readonly string[]): string {
  return segments.filter((segment) => segment !== "").join(".");
}

/** True for a configuration object (not an array, not null). */
function isObject(value: ConfValue): value is { [key: string]: ConfValue } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The value at a dotted path (CFG-14), or `undefined` when a segment misses: an object key that
 * does not exist, an array segment that is not a decimal in-bounds index, or a scalar on the
 * way. The empty path misses, as in the original.
 */
export function lookupValue(tree: ConfValue, path: string): ConfValue | undefined {
  const segments = splitPath(path);
  if (segments.length === 0) return undefined;
  let current: ConfValue = tree;
  for (const segment of segments) {
    if (Array.isArray(current)) {
      if (!INDEX_REGEXP.test(segment)) return undefined;
      const item: ConfValue | undefined = current[Number(segment)];
      if (item === undefined) return undefined;
      current = item;
    } else if (isObject(current)) {
      if (!Object.hasOwn(current, segment)) return undefined;
      const item: ConfValue | undefined = current[segment];
      if (item === undefined || item === null) return undefined;
      current = item;
    } else {
      return undefined;
    }
  }
  return current;
}

/**
 * The string at a dotted path (CFG-14), or `undefined` when the path misses or holds an object,
 * an array or null: the caller then uses its default. Numbers and booleans, which only plain-JSON
 * input keeps typed, read as their text: groom 1.3's rewrite chain quoted them (`"port": 443`
 * became `"443"`), so `{"groom":{"body_size":65536}}` keeps its meaning.
 */
export function lookupString(tree: ConfValue, path: string): string | undefined {
  const value = lookupValue(tree, path);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return typeof value === "string" ? value : undefined;
}

/**
 * Child paths of a dotted path (CFG-15): `path.0 … path.n-1` for an array, in order;
 * `path.<key>` for each key of an object; nothing for a scalar or a missing path.
 */
export function childPaths(tree: ConfValue, path: string): string[] {
  const value = lookupValue(tree, path);
  if (value === undefined) return [];
  const prefix = splitPath(path).join(".");
  if (Array.isArray(value)) return value.map((_, index) => `${prefix}.${index}`);
  if (isObject(value)) return Object.keys(value).map((key) => `${prefix}.${key}`);
  return [];
}

/**
 * Child paths of a list directive (CFG-15) with a warning when the directive holds a scalar: a
 * list written as a single string (`listen = "…"`) yields no entry, as in the original, but the
 * author almost certainly meant a one-element list.
 */
export function listChildren(tree: ConfValue, path: string): ListLookup {
  const value = lookupValue(tree, path);
  if (value === undefined || Array.isArray(value) || isObject(value)) {
    return { paths: childPaths(tree, path) };
  }
  const shown = typeof value === "string" ? JSON.stringify(value) : String(value);
  return {
    paths: [],
    warning: `Expected a list, found the single value ${shown}: it is ignored ` +
      `(write [ ${typeof value === "string" ? shown : `"${shown}"`} ])`,
  };
}
