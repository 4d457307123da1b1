package inbound

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// Auth is how a trigger authenticates its sender.
type Auth string

// Auth modes are stored in triggers: append, never rename.
const (
	// AuthHMACGitHub expects `X-Hub-Signature-256: sha256=<hex>`, the
	// HMAC-SHA256 of the raw body keyed by the secret, as GitHub sends it.
	AuthHMACGitHub Auth = "hmac-github"
	// AuthHMACOpsConductor expects `X-OpsConductor-Signature: sha256=<hex>`
	// over "<timestamp>.<body>" and `X-OpsConductor-Timestamp: <unix
	// seconds>` within [MaxClockSkew] of now, the scheme of our own
	// outbound webhooks.
	AuthHMACOpsConductor Auth = "hmac-opsconductor"
	// AuthBearer expects `Authorization: Bearer <secret>`.
	AuthBearer Auth = "bearer"
)

var authModes = []Auth{AuthHMACGitHub, AuthHMACOpsConductor, AuthBearer}

const (
	// DefaultRateLimit applies to a trigger whose RateLimit is 0.
	DefaultRateLimit = 60
	// MaxRateLimit bounds RateLimit: a hundred runs a second from one
	// trigger is far past any real integration and would only be a way
	// to flood the dispatcher.
	MaxRateLimit = 6000
	// maxExprNodes bounds one expression's syntax tree; a mapping needs a
	// few dozen nodes at most.
	maxExprNodes = 1000
	// maxExprLen bounds an expression's source text.
	maxExprLen = 4096
	// maxParams bounds a trigger's parameter map.
	maxParams = 100
)

// Trigger is an inbound webhook that starts a job. It is stored (by the
// caller) as it is here; compiled expressions are kept by [Handler].
type Trigger struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Job is the name of the job the trigger runs.
	Job  string `json:"job"`
	Auth Auth   `json:"auth"`
	// SecretRef names the secret in the keyring; the value never appears
	// in a trigger.
	SecretRef string `json:"secret_ref"`
	// ParamMap maps a job parameter name to an expression over payload,
	// headers and query.
	ParamMap map[string]string `json:"param_map,omitempty"`
	// Filter, when set, must evaluate to true for the job to run; a
	// delivery for which it is false is accepted and skipped.
	Filter string `json:"filter,omitempty"`
	// RateLimit is the number of accepted deliveries per minute, as a
	// token bucket holding a minute's worth; 0 means [DefaultRateLimit].
	RateLimit int  `json:"rate_limit,omitempty"`
	Enabled   bool `json:"enabled"`
}

// perMinute is the effective rate limit.
func (t *Trigger) perMinute() int {
	if t.RateLimit == 0 {
		return DefaultRateLimit
	}
	return t.RateLimit
}

// namePattern is what IDs, trigger names, job names and parameter names
// look like: they end up in URLs, logs and expressions.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// Validate reports every problem of the trigger at once, each naming its
// field (`param_map.commit`, `filter`).
func (t *Trigger) Validate() error {
	_, err := compile(t)
	return err
}

// Env is what expressions see. A missing payload field, header or query
// parameter reads as nil (headers and query are maps of any for that
// reason, where a map of strings would read ""). Authorization, Cookie and
// Proxy-Authorization are left out of headers.
type Env struct {
	Payload any            `expr:"payload"`
	Headers map[string]any `expr:"headers"`
	Query   map[string]any `expr:"query"`
}

// program is a trigger's compiled expressions.
type program struct {
	filter *vm.Program // nil when the trigger has no filter
	params []param     // sorted by name, so that errors come in a stable order
}

type param struct {
	name string
	src  string
	prog *vm.Program
}

// compile validates t and compiles its expressions.
func compile(t *Trigger) (*program, error) {
	var probs problem.List
	checkName := func(field, v string) {
		switch {
		case v == "":
			probs.Add(field, "is required")
		case !namePattern.MatchString(v):
			probs.Add(field, "must be 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit; got %q", v)
		}
	}
	checkName("id", t.ID)
	if strings.TrimSpace(t.Name) == "" {
		probs.Add("name", "is required")
	} else if len(t.Name) > 200 {
		probs.Add("name", "must be at most 200 bytes")
	}
	checkName("job", t.Job)
	if !slices.Contains(authModes, t.Auth) {
		probs.Add("auth", "must be one of hmac-github, hmac-opsconductor or bearer; got %q", t.Auth)
	}
	if strings.TrimSpace(t.SecretRef) == "" {
		probs.Add("secret_ref", "is required: every trigger is authenticated")
	}
	if t.RateLimit < 0 || t.RateLimit > MaxRateLimit {
		probs.Add("rate_limit", "must be between 0 (the default, %d a minute) and %d per minute; got %d", DefaultRateLimit, MaxRateLimit, t.RateLimit)
	}
	p := &program{}
	if strings.TrimSpace(t.Filter) != "" {
		prog, err := compileExpr(t.Filter, true)
		if err != nil {
			probs.Add("filter", "%v", err)
		}
		p.filter = prog
	}
	if len(t.ParamMap) > maxParams {
		probs.Add("param_map", "must map at most %d parameters; got %d", maxParams, len(t.ParamMap))
	}
	names := make([]string, 0, len(t.ParamMap))
	for name := range t.ParamMap {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		field := "param_map." + name
		if !namePattern.MatchString(name) {
			probs.Add(field, "is not a valid parameter name")
			continue
		}
		src := t.ParamMap[name]
		if strings.TrimSpace(src) == "" {
			probs.Add(field, "needs an expression, such as payload.after")
			continue
		}
		prog, err := compileExpr(src, false)
		if err != nil {
			probs.Add(field, "%v", err)
			continue
		}
		p.params = append(p.params, param{name: name, src: src, prog: prog})
	}
	if err := probs.Err(); err != nil {
		return nil, err
	}
	return p, nil
}

func compileExpr(src string, asBool bool) (*vm.Program, error) {
	if len(src) > maxExprLen {
		return nil, fmt.Errorf("expression is longer than %d bytes", maxExprLen)
	}
	opts := []expr.Option{expr.Env(Env{}), expr.MaxNodes(maxExprNodes)}
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s", firstLine(err))
	}
	return prog, nil
}

// firstLine drops the source excerpt that expr appends to its errors:
// problem messages are one line and the field already names the expression.
func firstLine(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return msg
}

// cacheKey identifies everything compile depends on, so that a cached
// program is reused only for a trigger that compiled the same way. JSON
// sorts map keys and quotes strings, so the key is unambiguous.
func (t *Trigger) cacheKey() string {
	b, err := json.Marshal(t)
	if err != nil {
		// A Trigger has only strings, ints, bools and a string map: it
		// always encodes.
		panic(fmt.Sprintf("inbound: encode trigger: %v", err))
	}
	return string(b)
}
