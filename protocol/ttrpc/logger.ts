import type { Logger } from 'pino';

/** The part of a pino logger ttrpc uses; pino's Logger satisfies it. */
export type TtrpcLogger = Pick<Logger, 'debug' | 'warn' | 'error'>;

const noop = (): void => undefined;
export const silentLogger: TtrpcLogger = { debug: noop, warn: noop, error: noop };
