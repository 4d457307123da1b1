// Types and calls for the jobs, runs and step-catalog endpoints this
// section uses (controller/gateway/jobs.go, plugins.go).
import { api, qs } from '../../api/client';

export interface Job {
  name: string;
  description?: string;
  latest_version: number;
  created_at: string;
  created_by: string;
  updated_at: string;
  updated_by: string;
}

export interface JobVersion {
  name: string;
  version: number;
  source: string;
  spec: unknown;
  digest: string;
  created_at: string;
  created_by: string;
}

export interface JobDetail extends Job {
  version: JobVersion;
}

export interface JobPutResult {
  job: Job;
  version: JobVersion;
  unchanged: boolean;
}

export interface RunSummary {
  id: string;
  job: string;
  version: number;
  status: string;
  reason?: string;
  trigger: { kind: string; by: string; schedule?: string };
  created_at: string;
  started_at?: string;
  finished_at?: string;
}

export interface CatalogStep {
  kind: 'builtin' | 'plugin';
  name: string;
  version: string;
  summary?: string;
  params?: Record<string, unknown>;
  outputs?: { name: string; description?: string }[];
  agents?: { all?: boolean; count: number };
}

/** What a palette entry puts in `uses`: built-ins by name, plugins pinned to their version. */
export const usesOf = (s: CatalogStep) => (s.kind === 'plugin' ? `${s.name}@${s.version}` : s.name);

const enc = encodeURIComponent;

export const jobsApi = {
  list: () => api.get<{ items: Job[] }>('/api/v1/jobs').then((r) => r.items),
  get: (name: string, version?: number) => api.get<JobDetail>(`/api/v1/jobs/${enc(name)}${qs({ version })}`),
  versions: (name: string) => api.get<{ items: JobVersion[] }>(`/api/v1/jobs/${enc(name)}/versions`).then((r) => r.items),
  put: (name: string, yaml: string) =>
    api.put<JobPutResult>(`/api/v1/jobs/${enc(name)}`, yaml, { headers: { 'Content-Type': 'application/yaml' } }),
  validate: (name: string, yaml: string, signal?: AbortSignal) =>
    api.post<{ valid: boolean }>(`/api/v1/jobs/${enc(name)}/validate`, yaml, { headers: { 'Content-Type': 'application/yaml' }, signal }),
  del: (name: string) => api.del<void>(`/api/v1/jobs/${enc(name)}`),
  run: (name: string, body: { params?: Record<string, unknown>; targets?: string[]; version?: number }) =>
    api.post<RunSummary>(`/api/v1/jobs/${enc(name)}/runs`, body),
  runs: (q: { job?: string; limit?: number }) => api.get<{ items: RunSummary[]; next?: string }>(`/api/v1/runs${qs(q)}`),
  catalog: () => api.get<{ items: CatalogStep[] }>('/api/v1/steps').then((r) => r.items),
};
