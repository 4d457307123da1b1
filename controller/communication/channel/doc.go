// Package channel delivers one notification attempt over one channel: an SMTP
// mail, a signed webhook POST, or a Slack-, Mattermost- or Teams-compatible
// chat message. It owns the channel configuration (its validation and its JSON
// form), the wire format of outbound webhooks (the HMAC signature, the
// timestamp and idempotency headers) and the mapping of every outcome to
// "succeeded", "retry later" or "give up".
//
// It is deliberately pure: it never touches Raft, the state store, the keyring
// or HTTP routes, never logs or stores a secret, and never retries by itself.
// The caller (the leader-only delivery worker) commits a delivery before it
// calls Sender.Send, records the Result, and schedules the next attempt with
// Backoff (and Result.RetryAfter). Secrets (the SMTP password, the webhook HMAC
// key) are passed to Send by the caller, which takes them from the keyring;
// they are never part of Config, so a Config can be stored, listed and shown.
package channel
