// Package inbound turns an HTTP request from an outside system (GitHub, a CI
// server, a script with curl) into the parameters of a job run. It owns the
// trigger definition and its validation, request authentication (HMAC
// signatures and bearer tokens), replay protection, a per-trigger rate limit
// and the mapping of a payload to parameters with expr expressions.
//
// It never starts a run, never writes replicated state and never reads the
// keyring: the caller (the gateway route the lead wires) looks the trigger
// up, fetches its secret, calls [Handler.Handle] and, on success, starts the
// run with the returned parameters after coercing them to the job's
// parameter types. Replicated replay memory is the caller's too, behind the
// [Seen] interface; [MemorySeen] serves tests and the single-node path.
//
// # What a request goes through
//
//  1. The trigger must be enabled.
//  2. The body is read, at most [MaxBodySize] bytes.
//  3. The request is authenticated with the trigger's [Auth] mode; failures
//     are answered with one generic 401 so that an attacker learns nothing
//     about which part was wrong, while the reason ([ErrMissingHeader],
//     [ErrMalformedHeader], [ErrBadSignature], [ErrStale]) is logged.
//  4. The payload (JSON, or form-encoded as GitHub sends with content type
//     application/x-www-form-urlencoded) is decoded, the filter evaluated
//     and, when it holds, every parameter expression evaluated.
//  5. A rate-limit token is taken and the delivery ID remembered; a delivery
//     seen before is refused with 409 and gives its token back.
//
// Expressions see payload (the decoded body), headers (lower-case names,
// repeated values joined with ", "; never Authorization, Cookie or
// Proxy-Authorization, so that a mapping cannot copy a credential into a
// run's parameters) and query (the first value of each query parameter). A field that is absent reads as nil, so a filter such as
// `payload.ref == "refs/heads/main"` is simply false for an event without
// a ref, while a parameter whose expression yields nil is an error naming
// the parameter; write `payload.x ?? "default"` to allow its absence.
//
// # GitHub
//
// Create the webhook with content type application/json (form-encoded works
// too), the trigger's URL and its secret. A trigger such as
//
//	name: deploy-on-push
//	job: deploy
//	auth: hmac-github
//	secret_ref: github-deploy-hook
//	filter: headers["x-github-event"] == "push" && payload.ref == "refs/heads/main"
//	param_map:
//	  commit: payload.after
//	  repository: payload.repository.full_name
//	  pusher: payload.pusher.name
//	rate_limit: 30
//
// accepts GitHub's `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the
// body>` and remembers each `X-GitHub-Delivery` so that a redelivered event
// does not run the job twice.
//
// # curl
//
// With auth hmac-opsconductor the sender signs "<unix timestamp>.<body>":
//
//	body='{"version":"1.4.2"}'
//	ts=$(date +%s)
//	sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$SECRET" -hex | sed 's/^.* //')
//	curl -X POST "$URL" -H 'Content-Type: application/json' \
//	  -H "X-OpsConductor-Timestamp: $ts" \
//	  -H "X-OpsConductor-Signature: sha256=$sig" \
//	  -H "X-OpsConductor-Delivery: $(uuidgen)" \
//	  --data "$body"
//
// A timestamp more than five minutes away from the controller's clock is
// refused. With auth bearer it is simply
//
//	curl -X POST "$URL" -H "Authorization: Bearer $SECRET" -H 'Idempotency-Key: build-981' --data '{"version":"1.4.2"}'
package inbound
