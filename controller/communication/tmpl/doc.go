// Package tmpl renders notifications: it owns the data model a notification
// template sees, the compiler that validates a template when it is saved, the
// renderer the delivery worker calls, sample events for previews and the
// built-in templates for every event type and channel kind.
//
// It is a pure package: it never reads the clock for anything but the render
// deadline, never touches the network, the environment or the state store, and
// never lets a template do so (the function map has no exec, env or file
// access). Other communication packages decide which event reaches which
// template; this one only turns an [Event] into a [Rendered] message.
//
// # Data model
//
// Every template executes with an [Event] as its dot. The fields common to
// every event are always set:
//
//	.Type      event type, e.g. "run.failed" (see the EventType constants)
//	.ID        unique event ID (stable across redeliveries)
//	.Time      when it happened (UTC)
//	.Severity  "info", "warning" or "critical"
//	.Summary   one line for people, e.g. "Run r-1 of deploy-web failed: 3 of 40 targets failed"
//	.Cluster   the cluster name
//	.Links     .UI, .Run, .Job, .Target, .Agent: absolute URLs back to the web UI (empty when not applicable)
//
// The detail sections are pointers and are nil unless the event type sets them,
// so a template written for several event types guards them with
// {{with .Run}}…{{end}}. Which sections each type sets:
//
//	run.started, run.succeeded, run.failed, run.canceled  .Run
//	approval.requested                                    .Run, .Step (the approval step)
//	step.failed                                           .Run, .Step, .Target
//	agent.down, agent.up                                  .Agent
//	discovery.found                                       .Discovery
//	credential.used, credential.rotated                   .Credential
//	login.failures                                        .Login
//	cluster.leader_changed                                .Leader
//	digest                                                .Digest (the events folded by throttling)
//
// # Bounds
//
// Data is bounded before a template sees it (see [Bound]): strings are cut to
// [MaxString] bytes, lists such as .Run.FailedTargets and .Digest.Events to
// the limits named by the Max constants. A render is bounded too: each field's
// output is at most [MaxOutput] bytes, every value a function returns at most
// MaxOutput bytes, range iterations plus template calls share a budget of
// [MaxSteps] per render, template calls alone (and so recursion depth) are
// limited to [MaxCalls], and a render has a deadline of [RenderTimeout]. Go templates
// cannot loop forever, but nested ranges, range over a number and mutual
// {{template}} calls can do exponential work; the budget turns those into an
// error instead of a stuck delivery worker.
//
// # Functions
//
// Besides the text/template built-ins (print, printf, len, index, eq, …, where
// printf refuses widths above 1000 and argument indexes), templates may call:
//
//	upper, lower, trim        strings
//	trunc N S                 S cut to N characters, with "…" when cut
//	join SEP LIST             the list joined with SEP
//	default DEF V             V, or DEF when V is empty (zero)
//	duration D                a time.Duration rounded for people ("1m30s")
//	time [LAYOUT] T           T in UTC as RFC3339, or in LAYOUT (a Go layout or
//	                          RFC3339, RFC1123, Kitchen, DateTime, DateOnly)
//	json V                    V encoded as JSON, for webhook bodies: {"text": {{json .Summary}}}
//	slack_escape S            S with &, < and > escaped, for Slack text inside a
//	                          webhook body (chat Text is escaped by the channel)
package tmpl
