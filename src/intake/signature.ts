import { createHmac, timingSafeEqual } from 'node:crypto';

// RWGPS signs the raw request body with HMAC-SHA256 keyed by the API
// client's secret and sends the digest as hex in x-rwgps-signature.
//
// Hex digits are accepted in either case: RWGPS sends lower case, but the
// digits encode the same bytes, and comparing bytes (not text) keeps the
// check in constant time.

const SIGNATURE_HEX = /^[0-9a-fA-F]{64}$/;

export type SignatureCheck = 'valid' | 'missing' | 'malformed' | 'mismatch';

export function checkSignature(body: Uint8Array, secret: string, header: string | undefined | null): SignatureCheck {
  if (header === undefined || header === null || header === '') return 'missing';
  if (!SIGNATURE_HEX.test(header)) return 'malformed';
  const expected = createHmac('sha256', secret).update(body).digest();
  const given = Buffer.from(header, 'hex');
  return timingSafeEqual(expected, given) ? 'valid' : 'mismatch';
}
