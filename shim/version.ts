// Filled in by scripts/build.mjs (esbuild define); "dev" when running from tsc output.
declare const __SHIM_VERSION__: string | undefined;
declare const __SHIM_REVISION__: string | undefined;
declare const __SHIM_BUILD_ID__: string | undefined;

export const SHIM_VERSION = typeof __SHIM_VERSION__ === 'string' ? __SHIM_VERSION__ : 'dev';
export const SHIM_REVISION = typeof __SHIM_REVISION__ === 'string' ? __SHIM_REVISION__ : 'unknown';
/** Unique per build (scripts/build.mjs): a spare daemon only takes `start`s of the very build it runs. */
export const SHIM_BUILD_ID = typeof __SHIM_BUILD_ID__ === 'string' ? __SHIM_BUILD_ID__ : 'dev';
export const RUNTIME_NAME = 'io.containerd.ts.v2';
declare const __SHIM_BROKEN_RESUME__: boolean | undefined;
/** Test builds only (scripts/build.mjs, SHIM_TS_BROKEN_RESUME=1): a build whose resume exits, to prove rollback. */
export const BROKEN_RESUME_FOR_TESTS = typeof __SHIM_BROKEN_RESUME__ === 'boolean' ? __SHIM_BROKEN_RESUME__ : false;
