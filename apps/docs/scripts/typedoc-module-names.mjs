// TypeDoc plugin: name each entry-point module after its npm package ("core/src" → "@blobkit/core"), since the
// packages' index.ts files carry `@packageDocumentation` without a `@module` name (and are not ours to edit).
import { Converter, ReflectionKind } from "typedoc";

/** @param {import("typedoc").Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    for (const child of context.project.children ?? []) {
      if (child.kind !== ReflectionKind.Module) continue;
      const match = /^([a-z0-9-]+)\/src(?:\/index)?$/.exec(child.name);
      if (match) child.name = `@blobkit/${match[1]}`;
    }
  });
}
