package automation

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/opsconductor/opsconductor/controller/automation/jobspec"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// Secret parameters never reach the replicated state or the history store
// in the clear: a run keeps them in one keyring envelope bound to the run,
// opened only on the leader when a step is rendered. The agent gets the
// rendered values and masks them in output; the attempt stored in the
// state holds the parameters with each secret value masked.

// maskedValue replaces a secret parameter's value wherever it is shown.
const maskedValue = "********"

// minSecretLen is the shortest secret value: shorter ones cannot be masked
// in output without masking ordinary text too.
const minSecretLen = 4

func paramsAAD(runID string) []byte { return []byte("automation/run/" + runID + "/params") }

// secretNames are the job's parameters marked secret.
func secretNames(job *jobspec.Job) []string {
	var out []string
	for _, p := range job.Params {
		if p.Secret {
			out = append(out, p.Name)
		}
	}
	return out
}

// sealParams moves the secret parameters out of params into an envelope
// for the run.
func (s *Service) sealParams(job *jobspec.Job, runID string, params map[string]any) (map[string]any, keyring.Sealed, []string, error) {
	secret := map[string]any{}
	for _, name := range secretNames(job) {
		v, ok := params[name]
		if !ok || v == nil {
			continue
		}
		str, isString := v.(string)
		if !isString || len(str) < minSecretLen {
			return nil, keyring.Sealed{}, nil, problem.Invalid("params."+name, "a secret parameter must be a string of at least %d characters", minSecretLen)
		}
		secret[name] = v
	}
	if len(secret) == 0 {
		return params, keyring.Sealed{}, nil, nil
	}
	if s.d.Sealer == nil {
		return nil, keyring.Sealed{}, nil, problem.Invalid("params", "this controller has no keyring to keep secret parameters")
	}
	plain, err := json.Marshal(secret)
	if err != nil {
		return nil, keyring.Sealed{}, nil, fmt.Errorf("encode secret params: %w", err)
	}
	sealed, err := s.d.Sealer.Seal(plain, paramsAAD(runID))
	clear(plain)
	if err != nil {
		return nil, keyring.Sealed{}, nil, fmt.Errorf("seal secret params: %w", err)
	}
	rest := maps.Clone(params)
	for name := range secret {
		delete(rest, name)
	}
	return rest, sealed, slices.Sorted(maps.Keys(secret)), nil
}

// openParams returns a run's parameters with its secret ones.
func (s *Service) openParams(r *Run) (map[string]any, map[string]string, error) {
	if r.Secret.IsZero() {
		return r.Params, nil, nil
	}
	if s.d.Sealer == nil {
		return nil, nil, problem.Unavailable("keyring_missing", "this controller has no keyring to open secret parameters")
	}
	plain, err := s.d.Sealer.Open(r.Secret, paramsAAD(r.ID))
	if err != nil {
		return nil, nil, fmt.Errorf("open the secret parameters of run %s: %w", r.ID, err)
	}
	var secret map[string]any
	err = json.Unmarshal(plain, &secret)
	clear(plain)
	if err != nil {
		return nil, nil, fmt.Errorf("decode the secret parameters of run %s: %w", r.ID, err)
	}
	all := maps.Clone(r.Params)
	if all == nil {
		all = map[string]any{}
	}
	values := map[string]string{}
	for k, v := range secret {
		all[k] = v
		if str, ok := v.(string); ok {
			values["params."+k] = str
		}
	}
	return all, values, nil
}

// maskSecrets replaces every secret value inside rendered parameters.
func maskSecrets(with json.RawMessage, values map[string]string) json.RawMessage {
	out := with
	for _, k := range slices.Sorted(maps.Keys(values)) {
		enc, err := json.Marshal(values[k])
		if err != nil || len(enc) < 2 {
			continue
		}
		// The value as it appears inside a JSON string, without quotes.
		out = bytes.ReplaceAll(out, enc[1:len(enc)-1], []byte(maskedValue))
	}
	return out
}

// viewParams shows a run's parameters: the secret ones masked.
func viewParams(r *Run) map[string]any {
	out := maps.Clone(r.Params)
	if out == nil {
		out = map[string]any{}
	}
	for _, name := range r.SecretNames {
		out[name] = maskedValue
	}
	return out
}

// EnvelopeCounts implements keyring.Holder: runs in the state holding
// secret parameters, by the key that wraps them.
func (s *Service) EnvelopeCounts() (map[string]int, error) {
	it, err := s.d.Store.ReadTxn().Get(tableRuns, "id")
	if err != nil {
		return nil, fmt.Errorf("count run envelopes: %w", err)
	}
	out := map[string]int{}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if r := obj.(*Run); !r.Secret.IsZero() {
			out[r.Secret.KeyID]++
		}
	}
	return out, nil
}

// RewrapEnvelopes implements keyring.Holder.
func (s *Service) RewrapEnvelopes(ctx context.Context, limit int) (int, error) {
	if s.d.Sealer == nil {
		return 0, nil
	}
	active := s.d.Sealer.ActiveKeyID()
	it, err := s.d.Store.ReadTxn().Get(tableRuns, "id")
	if err != nil {
		return 0, fmt.Errorf("read runs: %w", err)
	}
	var stale []keyring.Stale
	for obj := it.Next(); obj != nil && len(stale) < limit; obj = it.Next() {
		r := obj.(*Run)
		if r.Secret.IsZero() || r.Secret.KeyID == active {
			continue
		}
		stale = append(stale, keyring.Stale{What: "run " + r.ID, Sealed: r.Secret, AAD: paramsAAD(r.ID),
			Command: func(sealed keyring.Sealed) (state.Command, error) {
				return state.NewCommand(cmdRunRewrap, 1, runRewrapPayload{ID: r.ID, From: r.Secret.KeyID, Sealed: sealed})
			}})
	}
	return keyring.RewrapStale(ctx, s.d.Sealer, s.d.Applier, stale)
}

type runRewrapPayload struct {
	ID     string         `json:"id"`
	From   string         `json:"from"`
	Sealed keyring.Sealed `json:"sealed"`
}

// applyRunRewrap swaps a run's envelope for one re-wrapped under the
// active key, unless the run changed keys meanwhile.
func (d domain) applyRunRewrap(ctx *state.ApplyContext, p runRewrapPayload) (any, error) {
	before, err := getRun(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	if before.Secret.KeyID != p.From {
		return nil, problem.New(problem.KindConflict, "rewrapped", "run %s is no longer under key %s", p.ID, p.From)
	}
	r := before.clone()
	r.Secret = p.Sealed
	if err := ctx.Txn.Insert(tableRuns, r); err != nil {
		return nil, err
	}
	return nil, nil
}
