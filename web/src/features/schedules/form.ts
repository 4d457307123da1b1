// A schedule as the API shows it, and the dialog's form state ⇄ the body
// POST/PUT /api/v1/schedules take (controller/automation/schedule).

export interface Schedule {
  id: string;
  name: string;
  job: string;
  params?: Record<string, unknown>;
  cron: string;
  timezone: string;
  enabled: boolean;
  overlap: string;
  catch_up: string;
  description?: string;
  owner: string;
  owner_name?: string;
  created_at: string;
  updated_at: string;
  last_fire_time?: string;
  last_run_id?: string;
  last_outcome?: string;
  revision: number;
  next_fires: string[];
}

export interface ScheduleInput {
  name: string;
  job: string;
  cron: string;
  timezone: string;
  overlap: string;
  catch_up: string;
  description: string;
  enabled: boolean;
  params: Record<string, unknown>;
}

export function toInput(s?: Schedule): ScheduleInput {
  return {
    name: s?.name ?? '',
    job: s?.job ?? '',
    cron: s?.cron ?? '',
    timezone: s?.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC',
    overlap: s?.overlap ?? 'skip',
    catch_up: s?.catch_up ?? 'skip',
    description: s?.description ?? '',
    enabled: s?.enabled ?? true,
    params: s?.params ?? {},
  };
}

/**
 * The request body. An update carries the revision it was edited from, so
 * that a change someone else made in the meantime is refused, not lost.
 */
export function fromInput(f: ScheduleInput, editing?: Schedule): Record<string, unknown> {
  const body: Record<string, unknown> = {
    name: f.name.trim(),
    job: f.job,
    cron: f.cron.trim(),
    timezone: f.timezone.trim() || 'UTC',
    overlap: f.overlap,
    catch_up: f.catch_up,
    enabled: f.enabled,
  };
  if (f.description.trim()) body.description = f.description.trim();
  if (Object.keys(f.params).length) body.params = f.params;
  if (editing) body.revision = editing.revision;
  return body;
}
