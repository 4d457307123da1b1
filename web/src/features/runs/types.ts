// The run API's shapes (controller/automation view.go, runs.go, live/hub.go).

export type RunStatus = 'queued' | 'waiting' | 'running' | 'succeeded' | 'failed' | 'canceled';

export const runStatuses: RunStatus[] = ['queued', 'waiting', 'running', 'succeeded', 'failed', 'canceled'];

export function runFinal(s: string): boolean {
  return s === 'succeeded' || s === 'failed' || s === 'canceled';
}

export interface StepView {
  id: string;
  status: string;
  reason?: string;
  attempt_id?: string;
  try?: number;
  attempts?: string[];
  exit_code?: number | null;
  error?: string;
  started_at?: string | null;
  finished_at?: string | null;
  outputs?: Record<string, string>;
  changed?: boolean;
  retry_at?: string | null;
}

export interface TargetView {
  name: string;
  agent_id: string;
  batch: number;
  status: string;
  steps: StepView[];
}

export interface Approval {
  step: string;
  status: 'pending' | 'approved' | 'rejected' | 'expired';
  message?: string;
  requested_at: string;
  deadline: string;
  decided_at?: string;
  decided_by?: string;
  comment?: string;
}

export interface Trigger {
  kind: string;
  by: string;
  user_id?: string;
  schedule?: string;
  schedule_id?: string;
  fire_time?: string;
  rerun_of?: string;
}

export interface Summary {
  targets: number;
  pending: number;
  running: number;
  waiting: number;
  succeeded: number;
  failed: number;
  canceled: number;
  skipped: number;
}

export interface Run {
  id: string;
  job: string;
  version: number;
  params: Record<string, unknown> | null;
  trigger: Trigger;
  status: string;
  reason?: string;
  batch_size: number;
  approvals?: Approval[];
  cancel_requested_at?: string;
  canceled_by?: string;
  created_at: string;
  started_at?: string;
  finished_at?: string;
  summary: Summary;
  targets: TargetView[];
  hidden?: number;
}

export interface RunPage {
  items: Run[];
  next?: string;
}

/** One output chunk as the stream and GET /runs/{id}/logs carry it. */
export interface LogLine {
  target: string;
  step: string;
  attempt_id: string;
  try: number;
  seq: number;
  stream: string;
  data: string;
  time: string;
}

export interface LogPage {
  items: LogLine[];
  next: string;
}

/** A job version as GET /jobs/{name}?version=N returns it (only what the run view reads). */
export interface JobDetail {
  name: string;
  version: { version: number; spec: { steps?: { id: string; name?: string; uses: string; needs?: string[] }[] } };
}

/** A live stream event (controller/automation/live.Event). */
export interface StreamEvent {
  seq: number;
  type: 'hello' | 'run' | 'attempt' | 'log' | 'gap' | 'end';
  time: string;
  data?: unknown;
  from?: number;
  to?: number;
}

export interface Hello {
  run_id: string;
  epoch: string;
  head: number;
  oldest: number;
  restarted?: boolean;
}

/** The value the server shows in place of a secret parameter. */
export const maskedValue = '********';
