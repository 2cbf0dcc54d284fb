// Filled in by scripts/build.mjs (esbuild define); "dev" when running from tsc output.
declare const __SHIM_VERSION__: string | undefined;
declare const __SHIM_REVISION__: string | undefined;

export const SHIM_VERSION = typeof __SHIM_VERSION__ === 'string' ? __SHIM_VERSION__ : 'dev';
export const SHIM_REVISION = typeof __SHIM_REVISION__ === 'string' ? __SHIM_REVISION__ : 'unknown';
export const RUNTIME_NAME = 'io.containerd.ts.v2';
