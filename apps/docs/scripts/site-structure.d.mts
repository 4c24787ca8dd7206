export declare const API_PACKAGES: readonly string[];
export declare const GUIDES: readonly string[];
