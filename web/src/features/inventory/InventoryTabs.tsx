import { NavLink } from 'react-router';

export function InventoryTabs() {
  return (
    <nav className="inv-tabs" aria-label="Inventory">
      <NavLink to="/inventory" end>Targets</NavLink>
      <NavLink to="/inventory/groups">Groups</NavLink>
    </nav>
  );
}
