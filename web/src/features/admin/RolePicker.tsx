import type { Binding, Role } from './types';
import { bindingLabel } from './types';

/**
 * Checkboxes for unscoped role bindings. Scoped bindings (set through the
 * API) are kept as they are and listed, since this form cannot edit scopes.
 */
export function RolePicker({ roles, value, onChange, legend = 'Roles' }: { roles: Role[]; value: Binding[]; onChange: (b: Binding[]) => void; legend?: string }) {
  const scoped = value.filter((b) => b.scope && Object.keys(b.scope).length);
  const plain = new Set(value.filter((b) => !b.scope || !Object.keys(b.scope).length).map((b) => b.role));
  return (
    <fieldset className="fieldset">
      <legend className="field-label">{legend}</legend>
      <div className="checks">
        {roles.map((r) => (
          <label key={r.name} title={r.description}>
            <input
              type="checkbox"
              checked={plain.has(r.name)}
              onChange={(e) => {
                const next = new Set(plain);
                if (e.target.checked) next.add(r.name);
                else next.delete(r.name);
                onChange([...[...next].map((role) => ({ role })), ...scoped]);
              }}
            />
            {r.name}
          </label>
        ))}
      </div>
      {scoped.length > 0 && <p className="muted">Also scoped: {scoped.map(bindingLabel).join(', ')} (kept as is).</p>}
    </fieldset>
  );
}
