package inbound

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	lru "github.com/hashicorp/golang-lru"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// MaxBodySize is the largest payload accepted. GitHub caps its payloads at
// 25 MB, but the events worth starting a job for (push, release,
// workflow_run) are far below a megabyte.
const MaxBodySize = 1 << 20

// DefaultReplayTTL is how long a delivery ID is remembered. GitHub lets a
// person redeliver an event for days; a day covers automatic retries of
// every sender we know of, and the memory bound does the rest.
const DefaultReplayTTL = 24 * time.Hour

// ErrReplay is the reason a delivery seen before is refused.
var ErrReplay = errors.New("delivery already accepted")

// SecretSource gives a trigger's secret by its SecretRef. The lead backs it
// with the keyring.
type SecretSource interface {
	Secret(ctx context.Context, ref string) (string, error)
}

// Config is what a Handler needs. Secrets is required; the rest have
// defaults.
type Config struct {
	Secrets SecretSource
	// Seen remembers delivery IDs; the default is a MemorySeen of 100 000
	// entries, which suits a single node only.
	Seen Seen
	// Limiter holds the per-trigger buckets; the default keeps 10 000.
	Limiter *Limiter
	// Logger receives refusals with their reason; the default discards.
	Logger *slog.Logger
	// Now is the clock for timestamps, buckets and replay expiry.
	Now func() time.Time
	// ReplayTTL is how long a delivery ID is remembered.
	ReplayTTL time.Duration
}

// Handler authenticates and maps inbound deliveries. It is safe for
// concurrent use.
type Handler struct {
	cfg Config
	// programs caches each trigger's compiled expressions by trigger ID,
	// so that expressions are compiled once per version of a trigger
	// rather than once per delivery.
	programs *lru.Cache
}

type cachedProgram struct {
	key  string
	prog *program
}

// programCacheSize bounds the compiled-expression cache; a trigger that
// falls out is compiled again on its next delivery.
const programCacheSize = 4096

// NewHandler checks cfg and fills in its defaults.
func NewHandler(cfg Config) (*Handler, error) {
	if cfg.Secrets == nil {
		return nil, errors.New("inbound: Config.Secrets is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Seen == nil {
		cfg.Seen = NewMemorySeen(100_000, cfg.Now)
	}
	if cfg.Limiter == nil {
		cfg.Limiter = NewLimiter(10_000)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReplayTTL <= 0 {
		cfg.ReplayTTL = DefaultReplayTTL
	}
	cache, err := lru.New(programCacheSize)
	if err != nil {
		return nil, fmt.Errorf("inbound: program cache: %w", err)
	}
	return &Handler{cfg: cfg, programs: cache}, nil
}

// Outcome is an accepted delivery.
type Outcome struct {
	// Params are the evaluated ParamMap as JSON values (string, float64,
	// bool, []any, map[string]any; never nil at the top level); the
	// caller coerces them to the job's parameter types. Nil when Skipped.
	Params map[string]any
	// Skipped is true when the filter was false: the delivery is
	// authentic and acknowledged, but no job runs. A skipped delivery
	// takes no rate-limit token and is not remembered.
	Skipped bool
	// DeliveryID is the sender's ID for the delivery, "" if it sent none.
	DeliveryID string
}

// Handle authenticates req for trig, decodes its payload and maps it to
// job parameters. Errors are problems for the gateway to answer with:
// 401 (authentication; the reason is logged and kept in the error chain,
// never in the problem), 403 (disabled trigger), 409 (replayed delivery),
// 413, 415, 400 (bad payload, or a parameter that cannot be mapped: the
// field is `param_map.<name>`), 429 (rate limit). Any other error is the
// server's (the secret store, the replay store, a stored trigger that no
// longer compiles).
//
// An accepted delivery is already remembered: if the caller then fails to
// start the run, a retry with the same delivery ID is refused as a replay,
// so the caller should record the failure against the delivery rather
// than expect the sender to retry.
func (h *Handler) Handle(ctx context.Context, trig Trigger, req *http.Request) (Outcome, error) {
	log := h.cfg.Logger.With("trigger_id", trig.ID)
	if !trig.Enabled {
		return Outcome{}, problem.New(problem.KindForbidden, "trigger_disabled", "trigger %q is disabled", trig.ID)
	}
	prog, err := h.program(&trig)
	if err != nil {
		// Not wrapped with %w: the stored trigger is at fault, not the
		// sender, so this must not reach the sender as a 400.
		return Outcome{}, fmt.Errorf("trigger %q does not compile: %v", trig.ID, err)
	}
	body, err := readBody(req)
	if err != nil {
		return Outcome{}, err
	}
	secret, err := h.cfg.Secrets.Secret(ctx, trig.SecretRef)
	if err != nil {
		return Outcome{}, fmt.Errorf("trigger %q: secret %q: %w", trig.ID, trig.SecretRef, err)
	}
	now := h.cfg.Now()
	if err := Verify(req, body, trig, secret, now); err != nil {
		level := slog.LevelWarn
		if errors.Is(err, ErrNoSecret) || errors.Is(err, ErrUnknownAuth) {
			level = slog.LevelError // our misconfiguration, not the sender's
		}
		log.Log(ctx, level, "inbound webhook refused", "reason", err.Error(), "remote_addr", req.RemoteAddr)
		return Outcome{}, &refusal{cause: err, p: problem.New(problem.KindUnauthenticated,
			"webhook_unauthenticated", "the request could not be authenticated")}
	}
	deliveryID := DeliveryID(req)
	log = log.With("delivery_id", deliveryID)

	env, err := decodeEnv(req, body)
	if err != nil {
		return Outcome{}, err
	}
	if prog.filter != nil {
		pass, err := runFilter(prog, env)
		if err != nil {
			return Outcome{}, err
		}
		if !pass {
			log.Debug("inbound webhook skipped by filter")
			return Outcome{Skipped: true, DeliveryID: deliveryID}, nil
		}
	}
	params, err := mapParams(prog, env)
	if err != nil {
		return Outcome{}, err
	}

	res, retryAfter, ok := h.cfg.Limiter.Reserve(trig.ID, trig.perMinute(), now)
	if !ok {
		log.Info("inbound webhook rate limited", "retry_after", retryAfter)
		return Outcome{}, problem.RateLimited("webhook_rate_limited", retryAfter,
			"trigger %q accepts at most %d deliveries a minute", trig.ID, trig.perMinute())
	}
	if key, until := h.replayKey(req, trig, deliveryID, now); key != "" {
		first, err := h.cfg.Seen.Remember(ctx, trig.ID, key, until)
		if err != nil {
			res.Cancel()
			return Outcome{}, fmt.Errorf("trigger %q: remember delivery: %w", trig.ID, err)
		}
		if !first {
			res.Cancel()
			log.Warn("inbound webhook refused", "reason", ErrReplay.Error(), "remote_addr", req.RemoteAddr)
			return Outcome{}, &refusal{cause: ErrReplay, p: problem.New(problem.KindConflict,
				"webhook_replayed", "this delivery was already accepted")}
		}
	}
	log.Debug("inbound webhook accepted", "params", len(params))
	return Outcome{Params: params, DeliveryID: deliveryID}, nil
}

// replayKey is what Seen remembers for a delivery: the sender's delivery
// ID, or for our own scheme without one the signature itself, which covers
// the timestamp and so names exactly one request; it need only be kept
// while its timestamp is inside the window. Other requests without an ID
// have no replay protection beyond the rate limit: identical bodies may
// be meant as separate deliveries.
func (h *Handler) replayKey(req *http.Request, trig Trigger, deliveryID string, now time.Time) (string, time.Time) {
	if deliveryID != "" {
		return "id:" + deliveryID, now.Add(h.cfg.ReplayTTL)
	}
	if trig.Auth == AuthHMACOpsConductor {
		// Lower-cased because hex decoding ignores case: "AB" and "ab"
		// are the same signature and must be the same delivery.
		return "sig:" + strings.ToLower(strings.TrimSpace(req.Header.Get(HeaderSignature))), now.Add(2 * MaxClockSkew)
	}
	return "", time.Time{}
}

func (h *Handler) program(trig *Trigger) (*program, error) {
	key := trig.cacheKey()
	if v, ok := h.programs.Get(trig.ID); ok {
		if c := v.(*cachedProgram); c.key == key {
			return c.prog, nil
		}
	}
	prog, err := compile(trig)
	if err != nil {
		return nil, err
	}
	h.programs.Add(trig.ID, &cachedProgram{key: key, prog: prog})
	return prog, nil
}

// refusal carries a reason for the log (its Error and its chain) and a
// problem for the sender (its As), which may say less.
type refusal struct {
	cause error
	p     *problem.Error
}

func (e *refusal) Error() string { return e.cause.Error() }
func (e *refusal) Unwrap() error { return e.cause }

// As hands problem.As the sender-facing problem.
func (e *refusal) As(target any) bool {
	if t, ok := target.(**problem.Error); ok {
		*t = e.p
		return true
	}
	return false
}

func readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, MaxBodySize+1))
	if err != nil {
		// A gateway-level http.MaxBytesError stays recognisable.
		return nil, fmt.Errorf("read webhook body: %w", err)
	}
	if len(body) > MaxBodySize {
		p := problem.New(problem.KindTooLarge, "body_too_large", "request body is larger than %d bytes", MaxBodySize)
		p.Field = "body"
		return nil, p
	}
	return body, nil
}

// hiddenHeaders never reach expressions: a mapping could otherwise copy
// the bearer token into a run's parameters, where it would be stored and
// shown.
var hiddenHeaders = map[string]bool{"authorization": true, "proxy-authorization": true, "cookie": true}

// decodeEnv builds what expressions see from the request and its body.
func decodeEnv(req *http.Request, body []byte) (*Env, error) {
	env := &Env{Headers: map[string]any{}, Query: map[string]any{}}
	for name, vals := range req.Header {
		name = strings.ToLower(name)
		if !hiddenHeaders[name] {
			env.Headers[name] = strings.Join(vals, ", ")
		}
	}
	if req.URL != nil {
		for name, vals := range req.URL.Query() {
			if len(vals) > 0 {
				env.Query[name] = vals[0]
			}
		}
	}
	payload, err := DecodePayload(req.Header.Get("Content-Type"), body)
	if err != nil {
		return nil, err
	}
	env.Payload = payload
	return env, nil
}

// DecodePayload decodes a body by its content type: JSON (also when the
// type is missing), or a form, where GitHub's single `payload` field
// holding JSON is decoded as that JSON and any other form becomes an
// object of its first values. An empty body is an empty object, so that
// expressions read nil from it rather than failing.
func DecodePayload(contentType string, body []byte) (any, error) {
	mediaType := "application/json"
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return nil, problem.New(problem.KindUnsupported, "unsupported_media_type", "Content-Type %q cannot be parsed", contentType)
		}
		mediaType = mt
	}
	switch {
	case mediaType == "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, problem.Invalid("body", "is not a valid form: %v", err)
		}
		if len(form) == 1 && len(form["payload"]) == 1 {
			return decodeJSON([]byte(form.Get("payload")), "body.payload")
		}
		obj := make(map[string]any, len(form))
		for k, vals := range form {
			obj[k] = vals[0]
		}
		return obj, nil
	case mediaType == "application/json", strings.HasSuffix(mediaType, "+json"), mediaType == "text/plain":
		// text/plain is what curl --data sends without -H.
		return decodeJSON(body, "body")
	}
	return nil, problem.New(problem.KindUnsupported, "unsupported_media_type",
		"Content-Type %q is not supported: send application/json or application/x-www-form-urlencoded", mediaType)
}

func decodeJSON(b []byte, field string) (any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, problem.Invalid(field, "is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, problem.Invalid(field, "holds more than one JSON value")
	}
	if v == nil {
		return map[string]any{}, nil
	}
	return v, nil
}

func runFilter(prog *program, env *Env) (bool, error) {
	v, err := expr.Run(prog.filter, env)
	if err != nil {
		return false, problem.Invalid("filter", "%s", firstLine(err))
	}
	b, ok := v.(bool)
	if !ok {
		return false, problem.Invalid("filter", "must evaluate to true or false, not %T", v)
	}
	return b, nil
}

// mapParams evaluates every parameter expression and reports every
// failure at once.
func mapParams(prog *program, env *Env) (map[string]any, error) {
	var probs problem.List
	out := make(map[string]any, len(prog.params))
	for _, p := range prog.params {
		field := "param_map." + p.name
		v, err := expr.Run(p.prog, env)
		if err != nil {
			probs.Add(field, "%s", firstLine(err))
			continue
		}
		if v == nil {
			probs.Add(field, "%s evaluates to nil: the payload has no such field (write `%s ?? <default>` to allow that)", p.src, p.src)
			continue
		}
		jv, err := jsonValue(v)
		if err != nil {
			probs.Add(field, "%v", err)
			continue
		}
		out[p.name] = jv
	}
	if err := probs.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// jsonValue turns an expression's result into a plain JSON value, the form
// parameters are stored and coerced in: a result goes into the FSM and the
// run's record, so it must encode, and its type must not depend on whether
// expr happened to compute an int or a float.
func jsonValue(v any) (any, error) {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("evaluates to %v, which JSON cannot carry", x)
		}
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	case time.Duration:
		return x.String(), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("evaluates to a %T, which is not a JSON value", v)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("evaluates to a %T, which is not a JSON value", v)
	}
	return out, nil
}
