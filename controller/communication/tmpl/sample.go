package tmpl

import (
	"fmt"
	"strings"
	"time"
)

// sampleUI is the base URL of every sample link; example.com is reserved
// for documentation, so a preview's link never reaches a real host.
const sampleUI = "https://opsconductor.example.com"

// Sample returns a realistic event of type t for previews and for the trial
// render on save. The same type always yields the same event. An unknown
// type yields an event with only the common fields set.
func Sample(t EventType) Event {
	at := time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)
	e := Event{
		ID:       "evt-01HZX3K9Q7M2-" + strings.ReplaceAll(string(t), ".", "-"),
		Type:     t,
		Time:     at,
		Severity: SeverityInfo,
		Cluster:  "prod-eu",
		Links:    Links{UI: sampleUI},
	}
	run := func(status string) *Run {
		r := &Run{
			ID: "r-7f3a9c", Job: "deploy-web", Version: 12, Status: status, Trigger: "schedule",
			StartedAt: at.Add(-4*time.Minute - 12*time.Second),
			Summary:   RunSummary{Total: 40},
		}
		switch status {
		case "running":
			r.StartedAt = at
		case "succeeded":
			r.Summary.Succeeded = 40
		case "failed":
			r.Reason = "max failure percentage (5%) exceeded"
			r.Summary = RunSummary{Total: 40, Succeeded: 31, Failed: 3, Skipped: 5, Lost: 1}
			r.FailedTargets = []string{"web-03.eu", "web-11.eu", "web-17.eu"}
		case "canceled":
			r.Reason = "canceled by alice"
			r.Summary = RunSummary{Total: 40, Succeeded: 12, Canceled: 28}
		}
		if status != "running" && status != "awaiting_approval" {
			r.FinishedAt = at
			r.Duration = r.FinishedAt.Sub(r.StartedAt)
		} else {
			r.Duration = at.Sub(r.StartedAt)
		}
		return r
	}
	runLinks := func() {
		e.Links.Run = sampleUI + "/runs/r-7f3a9c"
		e.Links.Job = sampleUI + "/jobs/deploy-web"
	}
	switch t {
	case EventRunStarted:
		e.Run = run("running")
		e.Summary = "Run r-7f3a9c of deploy-web v12 started on 40 targets"
		runLinks()
	case EventRunSucceeded:
		e.Run = run("succeeded")
		e.Summary = "Run r-7f3a9c of deploy-web v12 succeeded on 40 targets in 4m12s"
		runLinks()
	case EventRunFailed:
		e.Severity = SeverityCritical
		e.Run = run("failed")
		e.Summary = "Run r-7f3a9c of deploy-web v12 failed: 3 of 40 targets failed"
		runLinks()
	case EventRunCanceled:
		e.Severity = SeverityWarning
		e.Run = run("canceled")
		e.Summary = "Run r-7f3a9c of deploy-web v12 was canceled by alice"
		runLinks()
	case EventApprovalRequested:
		e.Severity = SeverityWarning
		e.Run = run("running")
		e.Run.Status = "awaiting_approval"
		e.Step = &Step{ID: "approve-prod", Status: "awaiting_approval"}
		e.Summary = "Run r-7f3a9c of deploy-web v12 waits for approval of step approve-prod"
		runLinks()
	case EventStepFailed:
		e.Severity = SeverityWarning
		e.Run = run("running")
		e.Step = &Step{ID: "restart-nginx", Target: "web-03.eu", Status: "failed",
			Error: "command exited with status 1: nginx: [emerg] unknown directive \"gzip_stat\" in /etc/nginx/nginx.conf:42", ExitCode: 1}
		e.Target = &Target{Name: "web-03.eu", Address: "10.20.3.13", Tags: map[string]string{"env": "prod", "role": "web", "site": "eu-west"}}
		e.Summary = "Step restart-nginx failed on web-03.eu in run r-7f3a9c of deploy-web"
		runLinks()
		e.Links.Target = sampleUI + "/targets/web-03.eu"
	case EventAgentDown, EventAgentUp:
		e.Agent = &Agent{ID: "ag-5c1e0b", Name: "web-03.eu", Status: "disconnected", Version: "1.4.2"}
		e.Severity = SeverityCritical
		e.Summary = "Agent web-03.eu has not been seen for 90s"
		if t == EventAgentUp {
			e.Agent.Status = "connected"
			e.Severity = SeverityInfo
			e.Summary = "Agent web-03.eu is connected again"
		}
		e.Links.Agent = sampleUI + "/agents/ag-5c1e0b"
	case EventDiscoveryFound:
		e.Discovery = &Discovery{Profile: "dc1-subnets", Found: 212, Appeared: 4, Changed: 9, Disappeared: 1}
		e.Summary = "Discovery dc1-subnets found 212 hosts: 4 new, 9 changed, 1 gone"
	case EventCredentialUsed:
		e.Credential = &Credential{Name: "prod-ssh-deploy", Kind: "ssh_key", Actor: "run r-7f3a9c"}
		e.Summary = "Credential prod-ssh-deploy was used by run r-7f3a9c"
	case EventCredentialRotated:
		e.Severity = SeverityWarning
		e.Credential = &Credential{Name: "prod-db-password", Kind: "password", Actor: "alice"}
		e.Summary = "Credential prod-db-password was rotated by alice"
	case EventLoginFailures:
		e.Severity = SeverityCritical
		e.Login = &Login{Username: "admin", Failures: 27, Window: 5 * time.Minute, SourceIPs: []string{"203.0.113.7", "198.51.100.23"}}
		e.Summary = "27 failed logins for admin in 5m0s from 2 addresses"
	case EventLeaderChanged:
		e.Severity = SeverityWarning
		e.Leader = &Leader{From: "node-a", To: "node-c"}
		e.Summary = "Cluster leader changed from node-a to node-c"
	case EventDigest:
		e.Severity = SeverityCritical
		d := &Digest{Count: 500, Window: 5 * time.Minute}
		for i := range 3 {
			s := Sample(EventStepFailed)
			s.ID = fmt.Sprintf("evt-01HZX3K9Q7M2-%d", i)
			s.Time = at.Add(-time.Duration(3-i) * time.Second)
			name := fmt.Sprintf("web-%02d.eu", i+3)
			s.Step.Target, s.Target.Name = name, name
			s.Summary = "Step restart-nginx failed on " + name + " in run r-7f3a9c of deploy-web"
			d.Events = append(d.Events, s)
		}
		e.Digest = d
		e.Summary = "500 notifications in 5m0s were folded into this digest"
	}
	return e
}
