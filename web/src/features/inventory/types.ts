// The inventory's API shapes, as controller/assets, assets/graph and the
// gateway encode them.

export interface Connection {
  type: 'ssh' | 'agent' | string;
  agent_id?: string;
  via?: string;
  port?: number;
  username?: string;
  host_key?: string;
  host_key_policy?: string;
}

export interface RunOutcome {
  run_id: string;
  outcome: string;
  at: string;
}

export interface Target {
  id: string;
  name: string;
  addresses: string[];
  connection: Connection;
  tags: Record<string, string>;
  groups: string[];
  dynamic_groups?: string[];
  owner?: string;
  notes?: string;
  facts: Record<string, string>;
  status: { agent: string; last_seen?: string; last_run?: RunOutcome };
  created_at: string;
  created_by?: string;
  updated_at: string;
  revision: number;
}

export interface TargetPage {
  items: Target[];
  next: string;
}

export interface TargetInput {
  name: string;
  addresses?: string[];
  connection?: Connection;
  tags?: Record<string, string>;
  groups?: string[];
  owner?: string;
  notes?: string;
}

export interface Group {
  name: string;
  kind: 'static' | 'dynamic' | string;
  selector?: string;
  description?: string;
  created_at: string;
  created_by?: string;
  updated_at: string;
  revision: number;
}

export interface RowError {
  row: number;
  field: string;
  message: string;
}

export interface ImportReport {
  mode: string;
  dry_run: boolean;
  partial: boolean;
  rows: number;
  valid: number;
  invalid: number;
  created: number;
  updated: number;
  written: boolean;
  errors: RowError[];
  errors_omitted?: number;
}

export interface Edge {
  id: string;
  from: string;
  to: string;
  type: string;
  attributes?: Record<string, string>;
  created_at: string;
  created_by?: string;
  updated_at: string;
  updated_by?: string;
}

export interface EdgeView extends Edge {
  from_name: string;
  to_name: string;
}

export interface EdgePage {
  items: EdgeView[];
  next: string;
}

export interface GraphNode {
  id: string;
  name: string;
  depth: number;
}

export interface Graph {
  root: string;
  direction: string;
  depth: number;
  nodes: GraphNode[];
  edges: Edge[];
  truncated: boolean;
}

export type Direction = 'both' | 'dependents' | 'dependencies';

export const relationshipTypes = ['depends_on', 'runs_on', 'member_of', 'connects_to'] as const;
