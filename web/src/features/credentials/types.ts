// Credential metadata as the API shows it: never a secret value.

export interface Attachment {
  scope: 'target' | 'group' | string;
  name: string;
  role: string;
  credential_id: string;
  credential?: string;
  created_at: string;
  created_by: string;
}

export interface Credential {
  id: string;
  name: string;
  description?: string;
  kind: string;
  username?: string;
  tags?: Record<string, string>;
  fingerprint?: string;
  public_key?: string;
  subject?: string;
  not_after?: string;
  created_at: string;
  created_by: string;
  updated_at: string;
  updated_by: string;
  last_used_at?: string;
  attachments?: Attachment[];
}

export interface KeyInfo {
  id: string;
  tier: string;
  state: string;
  created_at?: string;
  created_by?: string;
  retired_at?: string;
  envelopes: Record<string, number>;
  total: number;
  removable: boolean;
}

export interface KeyringStatus {
  active: string;
  keys: KeyInfo[];
  pending: number;
  rewrap: { running: boolean; started_at?: string; ended_at?: string; rewrapped: number; error?: string };
}
