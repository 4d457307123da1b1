// Package audit is the tamper-evident audit log: who did what to which
// resource, from where, with what outcome. It owns the audit entries in the
// history store (kind "communication.audit", both backends) and nothing
// else; it never reads the replicated state and never decides what is worth
// auditing (the gateway and the domains call Append).
//
// # Chains
//
// Each controller keeps its own hash chain in the history stream
// "communication/audit/<node-id>". One writer per chain means no ordering
// across nodes is needed: a chain is totally ordered by its seq, which is
// the entry's position (1, 2, 3 …) and the record's history seq. Each entry
// holds prev_hash, the hash of the entry before it (64 zeros for seq 1), and
// hash = SHA-256 of the entry's canonical encoding without hash (which
// includes seq, node and prev_hash). Changing an entry breaks its own hash;
// rewriting its hash too breaks the next entry's prev_hash; removing one
// leaves a gap in the seqs. Verify walks a chain and names the first broken
// link; VerifyAll walks every node's.
//
// The canonical encoding is encoding/json of Entry without hash: fields in
// declaration order, map keys sorted, the diff first normalised through a
// JSON round trip (numbers kept as json.Number) so that what is hashed is
// exactly what a reader decodes. The stored record's Data is that encoding
// with `,"hash":"<hex>"}` in place of its closing brace, so it is an
// ordinary JSON object to readers, and Verify hashes the stored bytes
// themselves rather than a re-encoding of them.
//
// # Writing
//
// Open reads the tail of the node's own stream to continue its chain, so a
// restart resumes where the last entry left off. Append returns only when
// the entry is durable (history.Store.Append commits and syncs): the caller
// must fail the request when Append fails, because a mutation whose audit
// entry could not be recorded must not be acknowledged. Appends go through
// one goroutine per Log, which gives each pending batch its seqs and hashes
// and writes it as one store append: concurrent requests share an fsync
// (group commit) instead of queuing for one each. It writes the store
// directly rather than through history.Writer, whose batching delay and
// retry-until-stored are right for logs and wrong here, where the answer is
// needed within milliseconds and a failure must reach the caller.
//
// After a failed or ambiguous write the Log reloads the chain's tail before
// writing again, so it continues after whatever the store really holds. It
// reads every batch back after writing it: the store skips records whose
// (stream, seq) exist, so a second writer on the same chain (two
// controllers configured with one node id) would otherwise lose entries
// silently; instead that Append fails.
//
// # Wiring
//
// The gateway wraps its mutating routes in Middleware, which holds each
// response until the request's entry is durable and answers 503 (or the
// gateway's Fail) instead when it is not, and which refuses requests up
// front while the history store is known to be down (MiddlewareConfig.Ready); Describe supplies the actor,
// action, resource, request ID, source IP and diff from what the gateway
// knows. Domains that audit events of their own (identity's logins and
// token changes, agent enrolment, cluster membership) call Log.Append,
// and fail their operation when it fails. The API and CLI use Query with
// ParseFilter, Export with NewJSONLWriter or NewCSVWriter, and VerifyAll.
//
// # What it must never do
//
// Store a secret: Diff values under keys that look secret (password,
// secret, token, private_key, passphrase …) are replaced by "[redacted]",
// recursively, before hashing. Rewrite or delete an entry: only retention
// (the history store's) removes entries, oldest first; a chain whose oldest
// remaining entry is not seq 1 is reported as truncated, not broken, and
// the report's first seq and time let an auditor compare that with the
// retention configured.
//
// # Listing chains
//
// history.Store cannot list streams, so each Log registers its node once in
// the stream "communication/audit-nodes", at a seq derived from the node id
// (so controllers never contend for seqs there and re-registering is a
// no-op), dated at the end of year 9999 so that retention never removes it.
// VerifyAll reads that stream to find the chains.
package audit
