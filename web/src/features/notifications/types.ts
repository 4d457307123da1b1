// The notifications API's shapes (controller/communication/notify,
// channel and tmpl; /work/notes/notify-api.md).

export type ChannelKind = 'email' | 'webhook' | 'chat';

export interface EmailConfig {
  host: string;
  port: number;
  tls: 'starttls' | 'tls' | 'none';
  username?: string;
  from: string;
  to: string[];
  cc?: string[];
  template?: string;
  timeout?: string;
}

export interface WebhookConfig {
  url: string;
  headers?: Record<string, string>;
  template?: string;
  timeout?: string;
}

export interface ChatConfig {
  flavor: 'slack' | 'mattermost' | 'teams';
  url: string;
  template?: string;
  timeout?: string;
}

export interface ChannelConfig {
  kind: ChannelKind;
  email?: EmailConfig;
  webhook?: WebhookConfig;
  chat?: ChatConfig;
}

export interface ChannelView {
  name: string;
  description?: string;
  kind: ChannelKind;
  config: ChannelConfig;
  has_secret: boolean;
  max_attempts: number;
  revision: number;
  created_by?: string;
  created_at: string;
  updated_at: string;
}

export interface Template {
  name: string;
  channel: ChannelKind;
  events?: string[];
  subject?: string;
  text?: string;
  html?: string;
  body?: string;
  description?: string;
  revision?: number;
  created_at?: string;
  updated_at?: string;
}

export interface Rendered {
  subject?: string;
  text?: string;
  html?: string;
  body?: unknown;
}

export interface Rule {
  name: string;
  description?: string;
  events: string[];
  filter?: { jobs?: string[]; tags?: Record<string, string>; groups?: string[]; min_severity?: string };
  channels: string[];
  template?: string;
  throttle?: { max: number; window: string };
  enabled: boolean;
  revision?: number;
  created_at?: string;
  updated_at?: string;
}

export interface Attempt {
  at: string;
  code?: number;
  error?: string;
  response?: string;
  duration: string;
}

export interface NotifyEvent {
  id?: string;
  type: string;
  time?: string;
  severity?: string;
  summary?: string;
}

export interface Delivery {
  id: string;
  rule?: string;
  channel: string;
  template?: string;
  event: NotifyEvent;
  test?: boolean;
  state: 'pending' | 'delivered' | 'dead' | string;
  attempts: number;
  max_attempts: number;
  next_attempt_at?: string;
  last_error?: string;
  last_code?: number;
  history?: Attempt[];
  created_at: string;
  updated_at?: string;
  finished_at?: string;
  round?: number;
}

export interface EventType {
  type: string;
  sample: NotifyEvent & Record<string, unknown>;
}
