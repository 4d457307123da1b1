// Package notify turns events into notifications: channels (where a
// notification goes), templates (what it says), rules (which events go
// where, throttled) and deliveries (the outbox).
//
// Events are routed inside the FSM: a domain whose Apply makes something
// worth telling (a run finishing, an agent going down) calls an Emitter in
// the same transaction, and the matching rules' deliveries are committed
// with the change that caused them. No event is lost to a failover between
// the change and its notification, and every controller routes the same
// events the same way.
//
// Only the leader sends. Its worker picks pending deliveries from the
// outbox, renders and sends them, and commits each attempt's result; a
// delivery is therefore committed before it is attempted, and a leader
// that dies mid-send leaves it pending for the next leader, which sends it
// again with the same Idempotency-Key (at-least-once). Finished deliveries
// are written to the history store and then leave the state.
package notify
