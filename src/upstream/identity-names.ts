/**
 * An email address as mail providers and Supabase compare it: trimmed, NFC-normalised and
 * lower-cased, so `DEMO@Example.COM` and `demo@example.com` are one person.
 */
export function canonicalEmail(email: string): string {
  return email.trim().normalize('NFC').toLowerCase();
}
