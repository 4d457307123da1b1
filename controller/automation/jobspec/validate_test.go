package jobspec

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// validJob is a job that passes validation against the built-in catalog;
// the cases below change one thing each.
const validJob = `
name: deploy
params:
  - {name: version, type: string, required: true, pattern: "^[0-9.]+$"}
  - {name: batch, type: integer, default: 2, min: 1, max: 50}
  - {name: level, type: string, default: info, enum: [debug, info]}
  - {name: token, secret: true}
targets: {selector: "env=prod,role in (web,api)"}
rollout: {batch_size: "25%", max_fail_percent: 10}
credentials: [db-admin, deploy_key]
timeout: 1h
steps:
  - id: build
    uses: noop@1
    with: {outputs: {version: "${{ params.version }}"}}
  - id: restart
    uses: service@1
    needs: [build]
    when: ${{ steps.build.outputs.version != "" && target.tags.role == "web" }}
    with: {name: "app-${{ steps.build.outputs.version }}", action: restart}
    credentials: [db-admin]
    retries: {count: 3, backoff: 2s}
  - id: check
    uses: http
    needs: [restart]
    continue_on_error: true
    with:
      url: "http://${{ target.address }}:8080/healthz"
      retries: "${{ params.batch }}"
      expect_status: [200, 204]
  - id: approve
    uses: approval
    needs: [check]
    with: {timeout: 2h, message: "Ship ${{ params.version }}?"}
  - id: notify
    uses: http@1.0
    on_failure: true
    when: steps.restart.status == "failed"
    with: {url: "http://chat/hook", method: POST, body: "${{ steps.restart.outputs.active }}"}
`

func TestValidateAcceptsAValidJob(t *testing.T) {
	j := mustParse(t, validJob)
	for name, cat := range map[string]Catalog{"with the built-in catalog": builtinCatalog{}, "without a catalog": nil} {
		t.Run(name, func(t *testing.T) {
			if err := j.Validate(context.Background(), cat); err != nil {
				t.Fatalf("Validate: %v\n%q", err, problems(t, err))
			}
		})
	}
}

func TestValidateNamesEveryProblemWithItsPath(t *testing.T) {
	tests := []struct {
		name    string
		replace [][2]string // applied to validJob
		src     string      // instead of validJob
		want    []string
	}{
		{
			name:    "a need on an unknown step",
			replace: [][2]string{{"needs: [restart]\n    continue", "needs: [chek]\n    continue"}},
			want: []string{
				`steps[2].needs[0]: unknown step "chek"`,
				// check no longer needs restart, and approve (after check)
				// still reads nothing it does not need.
			},
		},
		{
			name:    "a cycle is named along its path",
			replace: [][2]string{{"    needs: [build]\n", "    needs: [build, approve]\n"}},
			want:    []string{"steps[1].needs: needs form a cycle: restart → approve → check → restart"},
		},
		{
			name: "a two-step cycle and a self-need",
			src: `name: x
targets: {all: true}
steps:
  - {id: a, uses: noop, needs: [b]}
  - {id: b, uses: noop, needs: [a]}
  - {id: c, uses: noop, needs: [c]}
`,
			want: []string{
				"steps[0].needs: needs form a cycle: a → b → a",
				"steps[2].needs[0]: a step cannot need itself",
			},
		},
		{
			name:    "unknown step kinds and versions",
			replace: [][2]string{{"uses: noop@1", "uses: nop@1"}, {"uses: http\n", "uses: http@2\n"}, {"uses: http@1.0", "uses: HTTP@x"}},
			want: []string{
				`steps[0].uses: step "nop@1" not found`,
				`steps[2].uses: the built-in step http is version 1.0.0, which does not satisfy "2"`,
				`steps[4].uses: "HTTP" is not a step name (lower-case letters, digits and '-')`,
				`steps[4].uses: "x" is not a version such as 1, 1.2 or 1.2.3`,
			},
		},
		{
			name: "with values are checked against the step's schema, templated ones only for presence",
			replace: [][2]string{
				{"action: restart}", "action: bounce, nmae: x}"},
				{"expect_status: [200, 204]", "expect_status: [200, 999]\n      header: \"${{ params.level }}\""},
			},
			want: []string{
				"steps[1].with.action: must be one of start, stop, restart, reload, enable, disable, status",
				"steps[1].with.nmae: unknown parameter",
				"steps[2].with.expect_status[1]: must be <= 599",
				"steps[2].with.header: unknown parameter",
			},
		},
		{
			name:    "a required with value that is missing",
			replace: [][2]string{{`url: "http://chat/hook", `, ""}},
			want:    []string{"steps[4].with.url: required"},
		},
		{
			name: "bad expressions",
			replace: [][2]string{
				{`when: ${{ steps.build.outputs.version != "" && target.tags.role == "web" }}`, `when: target.nmae == "x"`},
				{`retries: "${{ params.batch }}"`, `retries: "${{ params.batch + }}"`},
				{`body: "${{ steps.restart.outputs.active }}"`, `body: "${{ steps.restart.outputs.actve }} ${{ params.nope }}"`},
				{`message: "Ship ${{ params.version }}?"`, `message: "Ship ${{ params.version ?"`},
			},
			want: []string{
				"steps[1].when: type jobspec.TargetEnv has no field nmae (1:8)",
				"steps[2].with.retries: ${{ params.batch + }}: unexpected token EOF (1:14)",
				`steps[3].with.message: ${{ is not closed with }}`,
				`steps[4].with.body: ${{ steps.restart.outputs.actve }}: step "restart" (service@1) has no output "actve"`,
				`steps[4].with.body: ${{ params.nope }}: params.nope is not a parameter of this job`,
			},
		},
		{
			name: "a when that is not boolean, or text around an expression",
			replace: [][2]string{
				{`when: ${{ steps.build.outputs.version != "" && target.tags.role == "web" }}`, `when: target.name`},
				{`when: steps.restart.status == "failed"`, `when: "ok ${{ true }}"`},
			},
			want: []string{
				"steps[1].when: expected bool, but got string",
				"steps[4].when: must be one expression, with or without ${{ }}, not text around an expression",
			},
		},
		{
			name: "reading a step that is not needed",
			replace: [][2]string{
				{`url: "http://${{ target.address }}:8080/healthz"`, `url: "http://${{ target.address }}/${{ steps.approve.status }}"`},
				{`name: "app-${{ steps.build.outputs.version }}"`, `name: "app-${{ steps.restart.status }}"`},
			},
			want: []string{
				"steps[1].with.name: ${{ steps.restart.status }}: a step cannot read its own result",
				"steps[2].with.url: ${{ steps.approve.status }}: reads steps.approve, which this step does not need (add it to needs)",
			},
		},
		{
			name: "parameters",
			replace: [][2]string{
				{`{name: batch, type: integer, default: 2, min: 1, max: 50}`, `{name: batch, type: integer, default: "2", min: 5, max: 1}`},
				{`{name: level, type: string, default: info, enum: [debug, info]}`, `{name: level, type: string, default: warn, enum: [debug, info, 3], min: 1}`},
				{`{name: token, secret: true}`, "{name: token, secret: true, default: hunter2}\n  - {name: version, type: text}\n  - {name: 2x, pattern: \"(\"}"},
			},
			want: []string{
				`params[1].max: must not be below min`,
				`params[1].default: must be an integer, not a string ("2")`,
				`params[2]: min and max apply only to integer and number parameters`,
				`params[2].enum[2]: must be a string, not an integer`,
				`params[2].default: must be one of debug, info, 3`,
				`params[3].default: a secret parameter must not have a default: it would be stored in the job definition`,
				`params[4].name: "version" is declared twice`,
				`params[4].type: must be string, integer, number, boolean, array or object, not "text"`,
				`params[5].name: must be letters, digits and '_', starting with a letter or '_' (expressions read it as params.2x)`,
				"params[5].pattern: does not compile: error parsing regexp: missing closing ): `(`",
			},
		},
		{
			name: "name, targets, rollout, concurrency and durations",
			replace: [][2]string{
				{"name: deploy", "name: Deploy!"},
				{`targets: {selector: "env=prod,role in (web,api)"}`, `targets: {selector: "env in (", all: true, names: [a, a]}`},
				{`rollout: {batch_size: "25%", max_fail_percent: 10}`, `rollout: {batch_size: "0%", max_fail_percent: 101}`},
				{"timeout: 1h", "timeout: -1h\nconcurrency: never"},
				{"retries: {count: 3, backoff: 2s}", "retries: {count: 11, backoff: -2s}\n    timeout: -5s"},
			},
			want: []string{
				"name: must be 1 to 63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit",
				"targets.all: cannot be combined with names, tags, groups or selector",
				`targets.names[1]: "a" is listed twice`,
				"targets.selector: at position 8: expected ')' to close the list of values",
				`rollout.batch_size: a percentage must be above 0% and at most 100%, got "0%"`,
				"rollout.max_fail_percent: must be between 0 and 100",
				`concurrency: must be allow, queue or forbid, not "never"`,
				"timeout: must not be negative",
				"steps[1].retries.count: must be between 0 and 10",
				"steps[1].retries.backoff: must not be negative",
				"steps[1].timeout: must not be negative",
			},
		},
		{
			name: "batch size expressions see params only",
			replace: [][2]string{
				{`rollout: {batch_size: "25%", max_fail_percent: 10}`, `rollout: {batch_size: "${{ target.name }}"}`},
			},
			want: []string{"rollout.batch_size: ${{ target.name }}: the batch size is decided before any target runs; only params and run are available"},
		},
		{
			name: "step ids and credentials",
			replace: [][2]string{
				{"id: check", "id: Check"},
				{"id: approve", "id: build"},
				{"credentials: [db-admin]\n", "credentials: [db-admin, db_admin, root, db-admin]\n"},
				{"credentials: [db-admin, deploy_key]", "credentials: [db-admin, db_admin, deploy_key, deploy_key]"},
			},
			want: []string{
				`credentials[3]: "deploy_key" is listed twice`,
				`steps[1].credentials[1]: "db-admin" and "db_admin" would both reach the step as db_admin`,
				`steps[1].credentials[2]: "root" is not one of the job's credentials`,
				`steps[1].credentials[3]: "db-admin" is listed twice`,
				`steps[2].id: must be lower-case letters, digits, '_' or '-', starting with a letter (at most 63)`,
				`steps[3].id: "build" is also the id of steps[0]`,
				`steps[3].needs[0]: unknown step "check"`,
			},
		},
		{
			name: "approval steps",
			replace: [][2]string{
				{"uses: approval", "uses: approval@1"},
				{`with: {timeout: 2h, message: "Ship ${{ params.version }}?"}`, `with: {timeout: soon, message: 3, approvers: [ann]}`},
			},
			want: []string{
				"steps[3].uses: approval is built into the controller and takes no version",
				"steps[3].with.approvers: unknown field (an approval takes timeout and message)",
				"steps[3].with.message: must be a string",
				`steps[3].with.timeout: must be a positive duration such as 1h, not "soon"`,
			},
		},
		{
			name: "a normal step cannot need a handler",
			replace: [][2]string{
				{"    needs: [check]\n", "    needs: [check, notify]\n"},
			},
			want: []string{`steps[3].needs[1]: "notify" is an on_failure handler; only another handler may need it`},
		},
		{
			name: "required parts",
			src:  "description: nothing\n",
			want: []string{
				"name: required",
				"targets: required: give names, tags, groups, a selector or all: true",
				"steps: at least one step is required",
			},
		},
		{
			name: "an empty step",
			src:  "name: x\ntargets: {all: true}\nsteps: [{}]\n",
			want: []string{"steps[0].id: required", "steps[0].uses: required"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src
			if src == "" {
				src = validJob
				for _, r := range tt.replace {
					if !strings.Contains(src, r[0]) {
						t.Fatalf("validJob has no %q", r[0])
					}
					src = strings.Replace(src, r[0], r[1], 1)
				}
			}
			j := mustParse(t, src)
			err := j.Validate(context.Background(), builtinCatalog{})
			if err == nil {
				t.Fatal("Validate succeeded")
			}
			if !problem.Is(err, problem.KindInvalid) {
				t.Errorf("not an invalid-input problem: %v", err)
			}
			got := problems(t, err)
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

type failingCatalog struct{ err error }

func (c failingCatalog) Describe(context.Context, string) (sdk.Description, error) {
	return sdk.Description{}, c.err
}

func TestValidateReturnsCatalogFailuresAsErrors(t *testing.T) {
	j := mustParse(t, validJob)
	boom := errors.New("registry unreachable")
	err := j.Validate(context.Background(), failingCatalog{err: boom})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the catalog's error", err)
	}
	if problem.Is(err, problem.KindInvalid) {
		t.Error("a catalog failure was reported as bad input")
	}
}

func TestValidateExampleFromTheIssue(t *testing.T) {
	// The issue's example omits the url of undrain and page; validation
	// says so rather than letting the run fail on every target.
	j := mustParse(t, string(readExample(t)))
	got := problems(t, j.Validate(context.Background(), builtinCatalog{}))
	want := []string{"steps[3].with.url: required", "steps[4].with.url: required"}
	if !slices.Equal(got, want) {
		t.Errorf("problems = %q, want %q", got, want)
	}
	if err := j.Validate(context.Background(), nil); err != nil {
		t.Errorf("without a catalog: %v", err)
	}
}
