export declare const docsRoot: string;
export declare const repoRoot: string;
export interface ContentCopy {
  from: string;
  to: string;
  title: string;
  description: string;
  missing: string;
}
export declare const COPIES: readonly ContentCopy[];
export declare function escapePlaceholders(markdown: string): string;
export declare function transform(fromFile: string, markdown: string): string;
export declare function syncContent(): (ContentCopy & { exists: boolean })[];
