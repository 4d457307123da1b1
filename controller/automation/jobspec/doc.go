// Package jobspec owns the job definition: its schema (YAML or JSON, one
// shape), strict parsing, validation with every problem named by its path,
// the expressions inside a job (`${{ … }}` templates and `when:`
// conditions, evaluated with expr-lang/expr over Env), parameter
// resolution, rollout batch sizes, and the DAG semantics of one target's
// steps (Plan).
//
// It is pure: no Raft, no HTTP, no clock, no goroutines, no I/O. The run
// engine (controller/automation) calls it to decide what to start and what
// to send to an agent; it must never reach back into the engine, the state
// store or the assets domain (targets arrive as TargetEnv, the step catalog
// through the Catalog interface).
//
// A parsed Job is immutable and safe for concurrent use by many goroutines:
// Parse compiles every expression once and keeps the programs inside the
// Job, so rendering a step for thousands of targets costs one VM run per
// expression and no compilation.
package jobspec
