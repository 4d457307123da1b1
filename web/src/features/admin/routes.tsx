import { NavLink, Navigate, Route, Routes } from 'react-router';
import { PageHeader } from '../../components/ui';
import { Roles } from './Roles';
import { Sessions } from './Sessions';
import { Tokens } from './Tokens';
import { UserDetail } from './UserDetail';
import { Users } from './Users';

export default function AdminRoutes() {
  return (
    <div>
      <PageHeader title="Users & access" />
      <nav className="tabs" aria-label="Users and access">
        <NavLink to="/admin/users">Users</NavLink>
        <NavLink to="/admin/roles">Roles</NavLink>
        <NavLink to="/admin/tokens">API tokens</NavLink>
        <NavLink to="/admin/sessions">Sessions</NavLink>
      </nav>
      <Routes>
        <Route index element={<Navigate to="users" replace />} />
        <Route path="users" element={<Users />} />
        <Route path="users/:id" element={<UserDetail />} />
        <Route path="roles" element={<Roles />} />
        <Route path="tokens" element={<Tokens />} />
        <Route path="sessions" element={<Sessions />} />
      </Routes>
    </div>
  );
}
