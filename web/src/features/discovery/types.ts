// Discovery's API shapes (controller/assets/discovery, plugins/builtin).

export interface AutoImport {
  ports: number[];
  tags?: Record<string, string>;
}

export interface Profile {
  name: string;
  cidrs: string[];
  ports?: string[];
  agent: string;
  concurrency?: number;
  rate?: number;
  timeout?: string;
  banner_timeout?: string;
  resolve?: boolean;
  auto_import?: AutoImport;
  schedule?: string;
  time_zone?: string;
  last_fire?: string;
  created_at: string;
  created_by?: string;
  updated_at: string;
  revision: number;
}

export interface Progress {
  probed: number;
  total: number;
  up: number;
}

export interface Summary {
  hosts_up: number;
  open_ports: number;
  appeared: number;
  changed: number;
  disappeared: number;
  proposed: number;
  auto_imported: number;
}

export interface Scan {
  id: string;
  profile: string;
  agent: string;
  params: { cidrs: string[]; ports?: string[] };
  attempt_id?: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled' | string;
  error?: string;
  progress: Progress;
  summary?: Summary;
  previous?: string;
  created_at: string;
  created_by?: string;
  started_at?: string;
  finished_at?: string;
}

export interface DiscoveredPort {
  port: number;
  service?: string;
  banner?: string;
  http?: { status: number; server?: string; title?: string };
  tls?: { subject?: string; sans?: string[]; issuer?: string; not_after?: string };
}

export interface Host {
  address: string;
  hostnames?: string[];
  ports: DiscoveredPort[];
}

export interface HostView extends Host {
  /** The inventory target with this address; empty means proposed for import. */
  target?: string;
}

export interface HostChange {
  address: string;
  opened?: number[];
  closed?: number[];
  changed?: { port: number; before: DiscoveredPort; after: DiscoveredPort }[];
}

export interface Diff {
  appeared: Host[];
  changed: HostChange[];
  disappeared: Host[];
}

export interface ScanDetail extends Scan {
  diff?: Diff;
}

export const activeScan = (s: Pick<Scan, 'status'>) => s.status === 'queued' || s.status === 'running';
