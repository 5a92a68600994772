/**
 * Joining byte arrays, shared by the codecs, the server and the agent (one copy of a loop that
 * was written six times).
 * @module
 */

/**
 * The bytes of `parts` in order as one array. When at most one part is non-empty that part is
 * returned itself (no copy; an empty array when there is none), so a caller that mutates the
 * result must copy it first. `size`, when given, is the total length (saves a pass).
 */
export function concatBytes(parts: readonly Uint8Array[], size?: number): Uint8Array {
  let nonEmpty: Uint8Array | undefined;
  let count = 0;
  let total = 0;
  for (const part of parts) {
    if (part.length === 0) continue;
    nonEmpty = part;
    count++;
    total += part.length;
  }
  if (count <= 1) return nonEmpty ?? new Uint8Array(0);
  const out = new Uint8Array(size ?? total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
