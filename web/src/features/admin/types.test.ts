import { describe, expect, it } from 'vitest';
import { bindingLabel, isLocked, userBadges, type User } from './types';

const user = (over: Partial<User>): User => ({
  id: 'u', username: 'u', display_name: '', email: '', roles: [], disabled: false, must_change_password: false,
  totp_enabled: false, password_changed_at: '', created_at: '', updated_at: '', ...over,
});

describe('user state', () => {
  it('is locked only while locked_until is in the future', () => {
    const now = Date.parse('2026-11-27T12:00:00Z');
    expect(isLocked(user({ locked_until: '2026-11-27T12:00:01Z' }), now)).toBe(true);
    expect(isLocked(user({ locked_until: '2026-11-27T11:59:59Z' }), now)).toBe(false);
    expect(isLocked(user({}), now)).toBe(false);
  });
  it('shows every state that applies, each as text', () => {
    expect(userBadges(user({ disabled: true, must_change_password: true, totp_enabled: true })).map((b) => b.status))
      .toEqual(['disabled', 'must change password', '2FA']);
    expect(userBadges(user({})).map((b) => b.status)).toEqual(['active']);
  });
  it('labels scoped bindings with their scope', () => {
    expect(bindingLabel({ role: 'viewer' })).toBe('viewer');
    expect(bindingLabel({ role: 'operator', scope: { tags: { env: 'dev' } } })).toBe('operator ({"tags":{"env":"dev"}})');
  });
});
