// Package agentrpc owns agent enrolment on the controller: the agent CA
// (its key sealed by the keyring and replicated), join tokens (stored
// hashed), the enrolled-agent table, and the gRPC listener agents dial
// with mutual TLS (DESIGN.md §4), and the agents' Connect streams, which
// terminate on the Raft leader: followers redirect, and the leader keeps a
// local registry of live streams and heartbeat leases.
//
// Enroll is the only call a peer may make without a client certificate;
// every other call must present a certificate from the agent CA naming a
// known, non-revoked agent. The package must never store a join-token
// secret or the CA key in the clear, never log either, and never decide a
// token's use count outside the FSM: enrolments race, and only the FSM
// serialises them. Heartbeats never become Raft writes: only status
// changes (up, down, draining, revoked) and fact changes are committed.
package agentrpc
