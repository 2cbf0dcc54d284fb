/**
 * Set by the executable's wrapper (scripts/shim-wrapper.sh) when it runs Node in the background of its
 * `start`: that process is the daemon-to-be, so no second Node process is started. The value is containerd's
 * pid (the wrapper's parent), for the daemon's OOM score.
 */
export const INLINE_START_ENV = 'CONTAINERD_SHIM_TS_INLINE_START';
