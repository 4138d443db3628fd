import { z } from 'zod';

/** An optional variable, trimmed; blank counts as unset. */
export const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

/** A whole number within `min`..`max`, `fallback` when unset. */
export const integer = (fallback: number, min: number, max: number) =>
  optionalString
    .pipe(
      z
        .string()
        .regex(/^\d+$/, 'must be a whole number')
        .transform(Number)
        .pipe(z.number().min(min).max(max))
        .optional(),
    )
    .transform((v) => v ?? fallback);

/** An optional TCP port. */
export const optionalPort = optionalString.pipe(
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().min(0).max(65535))
    .optional(),
);

// Bearer tokens an operator generates; short ones could be guessed.
export const bearerToken = optionalString.pipe(
  z.string().min(32, 'must be at least 32 characters').optional(),
);

/** `true`/`false`/`1`/`0`, false when unset. */
export const flag = optionalString
  .pipe(z.enum(['true', 'false', '1', '0']).optional())
  .transform((v) => v === 'true' || v === '1');

/** A comma-separated list, items trimmed, blanks dropped. */
export const list = optionalString.transform((v) =>
  v === undefined
    ? []
    : v
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== ''),
);
