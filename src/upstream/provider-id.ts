/**
 * The id of one upstream, as its provider module names it: the `:provider` path segment, the key of
 * its credential in a session, the `provider` of an error. The provider module list says which exist.
 */
export type ProviderId = string;
