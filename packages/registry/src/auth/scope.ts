/**
 * Registry token scopes (`repository:acme/app:pull,push`): parsing, merging and the "does this token cover
 * that request" test behind the token cache.
 */

/** Resource (`repository:acme/app`) → actions. */
export type ScopeSet = Map<string, Set<string>>;

/** Parses scopes (each may itself be a space-separated list, as in a challenge's `scope` parameter). */
export function parseScopes(scopes: Iterable<string>): ScopeSet {
  const set: ScopeSet = new Map();
  for (const item of scopes) {
    if (typeof item !== "string") continue;
    for (const scope of item.split(/\s+/)) {
      if (scope === "") continue;
      const last = scope.lastIndexOf(":");
      const first = scope.indexOf(":");
      // `type:name:actions`; anything else is kept whole as an opaque scope with no actions.
      const resource = last > first && first > 0 ? scope.slice(0, last) : scope;
      const actions = last > first && first > 0 ? scope.slice(last + 1).split(",") : [];
      let entry = set.get(resource);
      if (entry === undefined) {
        entry = new Set();
        set.set(resource, entry);
      }
      for (const action of actions) if (action !== "") entry.add(action);
    }
  }
  return set;
}

/** The canonical strings of a scope set: sorted resources, sorted actions. */
export function formatScopes(set: ScopeSet): string[] {
  return [...set.keys()].sort().map((resource) => {
    const actions = [...set.get(resource)!].sort();
    return actions.length === 0 ? resource : `${resource}:${actions.join(",")}`;
  });
}

/** True when a token granted for `granted` is good for a request needing `wanted`. */
export function covers(granted: ScopeSet, wanted: ScopeSet): boolean {
  for (const [resource, actions] of wanted) {
    const have = granted.get(resource);
    if (have === undefined) return false;
    if (have.has("*")) continue;
    for (const action of actions) if (!have.has(action)) return false;
  }
  return true;
}
