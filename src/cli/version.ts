/**
 * The program version, read from the one place it is written: the `version` field of deno.json
 * (stamped into every build, shown by `groom --version` and in the `start` log event).
 * @module
 */

import denoJson from "../../deno.json" with { type: "json" };

/** groom's version string, e.g. `2.0.0`. */
export const VERSION: string = denoJson.version;
