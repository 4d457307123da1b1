package jobspec

// Status is a step's state on one target (and a target's outcome).
type Status string

// Step statuses. Pending, Running and Waiting are in progress; the rest are
// final.
const (
	Pending   Status = "pending"
	Running   Status = "running"
	Succeeded Status = "succeeded"
	Failed    Status = "failed"
	Skipped   Status = "skipped"
	Canceled  Status = "canceled"
	Lost      Status = "lost"
	TimedOut  Status = "timed_out"
	Waiting   Status = "waiting" // an approval step waiting for a person
)

// Final reports whether a step in this status will not change again. An
// empty status is pending; a status this package does not know is taken as
// final (and as a failure, see failed) so that a corrupt record cannot
// keep a target running forever.
func (s Status) Final() bool {
	switch s {
	case "", Pending, Running, Waiting:
		return false
	}
	return true
}

// failedStatus reports whether the status counts as a failure of the step
// (before continue_on_error is considered).
func failedStatus(s Status) bool {
	switch s {
	case "", Pending, Running, Waiting, Succeeded, Skipped, Canceled:
		return false
	}
	return true // Failed, Lost, TimedOut and anything unknown
}

// StepState is what the engine knows about one step on one target.
type StepState struct {
	Status  Status            `json:"status"`
	Outputs map[string]string `json:"outputs,omitempty"`
	Changed bool              `json:"changed,omitempty"`
}

// Decision is what Plan decided for one target. Step IDs are listed in the
// job's step order.
type Decision struct {
	// Start lists steps whose turn has come and whose When is true; the
	// caller starts them (an approval step goes to Waiting).
	Start []string
	// Skip lists steps decided skipped now: When was false, a need
	// ended other than succeeded (or failed with continue_on_error), or
	// an on_failure handler found no failure.
	Skip []string
	// Cancel lists steps decided canceled now (the target was canceled
	// before they started, or an approval was still waiting). Running
	// steps are not listed: the caller cancels their attempts, and Plan
	// is Done once they report.
	Cancel []string
	// Errors maps a step ID to why its When could not be evaluated; the
	// caller records that step as Failed.
	Errors map[string]string
	// Done is true when every step has a final status.
	Done bool
	// Outcome, when Done, is Succeeded, Failed or Canceled.
	Outcome Status
}

// Plan decides what happens next on one target, given the current step
// states (a missing step is pending). It is pure and cheap; the engine calls
// it again whenever a step of the target changes state.
//
// eval decides a step's When; it is called only for a step with a non-empty
// When, once its needs allow it to run. An error from eval fails the step
// (see Decision.Errors). A nil eval fails every step that has a When.
//
// The rules: a normal step starts when every need Succeeded or Failed with
// continue_on_error on that need, and is skipped when a need ended in any
// other way. A failure is a step that Failed, was Lost or TimedOut without
// continue_on_error. on_failure handlers wait until every other step is
// final; they then run (after their own needs, whatever those ended as) if
// there was a failure, and are skipped if not. A canceled target starts
// nothing, cancels what has not started, and is Done once nothing runs.
func (j *Job) Plan(states map[string]StepState, canceled bool, eval func(*Step) (bool, error)) Decision {
	var d Decision
	cur := make(map[string]Status, len(j.Steps))
	for i := range j.Steps {
		st := states[j.Steps[i].ID].Status
		if st == "" {
			st = Pending
		}
		cur[j.Steps[i].ID] = st
	}

	if canceled {
		for i := range j.Steps {
			s := &j.Steps[i]
			if st := cur[s.ID]; st == Pending || st == Waiting {
				d.Cancel = append(d.Cancel, s.ID)
				cur[s.ID] = Canceled
			}
		}
		d.Done = allFinal(j, cur)
		if d.Done {
			d.Outcome = Canceled
		}
		return d
	}

	byID := make(map[string]*Step, len(j.Steps))
	for i := range j.Steps {
		byID[j.Steps[i].ID] = &j.Steps[i]
	}
	// Deciding one step can settle another (a skip propagates down a
	// chain), so repeat until a pass decides nothing. Each pass decides at
	// least one step or ends the loop, so it runs at most len(Steps)+1
	// times.
	for changed := true; changed; {
		changed = false
		mainFinal, mainFailed := true, false
		for i := range j.Steps {
			s := &j.Steps[i]
			if s.OnFailure {
				continue
			}
			st := cur[s.ID]
			if !st.Final() {
				mainFinal = false
			} else if failedStatus(st) && !s.ContinueOnError {
				mainFailed = true
			}
		}
		for i := range j.Steps {
			s := &j.Steps[i]
			if cur[s.ID] != Pending {
				continue
			}
			ready, skip := false, false
			if s.OnFailure {
				switch {
				case !mainFinal:
				case !mainFailed:
					skip = true
				default:
					ready = needsFinal(s, cur)
				}
			} else {
				ready, skip = needsMet(s, cur, byID)
			}
			switch {
			case skip:
				d.Skip = append(d.Skip, s.ID)
				cur[s.ID] = Skipped
				changed = true
			case ready:
				run, err := true, error(nil)
				if s.When != "" {
					if eval == nil {
						run, err = false, errNoEval
					} else {
						run, err = eval(s)
					}
				}
				switch {
				case err != nil:
					if d.Errors == nil {
						d.Errors = map[string]string{}
					}
					d.Errors[s.ID] = err.Error()
					cur[s.ID] = Failed
				case run:
					d.Start = append(d.Start, s.ID)
					cur[s.ID] = Running
				default:
					d.Skip = append(d.Skip, s.ID)
					cur[s.ID] = Skipped
				}
				changed = true
			}
		}
	}

	d.Done = allFinal(j, cur)
	if d.Done {
		d.Outcome = Succeeded
		for i := range j.Steps {
			s := &j.Steps[i]
			if failedStatus(cur[s.ID]) && !s.ContinueOnError {
				d.Outcome = Failed
				break
			}
		}
	}
	return d
}

type planError string

func (e planError) Error() string { return string(e) }

const errNoEval = planError("no evaluator was given for when")

// needsMet reports whether a normal step may start (every need succeeded,
// or failed with continue_on_error) or must be skipped (a need ended any
// other way). Neither means a need is still in progress.
func needsMet(s *Step, cur map[string]Status, byID map[string]*Step) (ready, skip bool) {
	ready = true
	for _, n := range s.Needs {
		st, known := cur[n]
		if !known {
			// Validate refuses unknown needs; a job that skipped
			// validation must still end.
			return false, true
		}
		switch {
		case st == Succeeded:
		case st == Failed && byID[n].ContinueOnError:
		case st.Final():
			return false, true
		default:
			ready = false
		}
	}
	return ready, false
}

// needsFinal reports whether every need of a handler has ended, however.
func needsFinal(s *Step, cur map[string]Status) bool {
	for _, n := range s.Needs {
		if st, known := cur[n]; known && !st.Final() {
			return false
		}
	}
	return true
}

func allFinal(j *Job, cur map[string]Status) bool {
	for i := range j.Steps {
		if !cur[j.Steps[i].ID].Final() {
			return false
		}
	}
	return true
}
