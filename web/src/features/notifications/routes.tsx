import { NavLink, Navigate, Route, Routes } from 'react-router';
import { EmptyState, PageHeader } from '../../components/ui';
import { useAuth } from '../../app/auth';
import { Channels } from './Channels';
import { TemplateEditor, Templates } from './Templates';
import { Rules } from './Rules';
import { Deliveries } from './Deliveries';
import { Triggers } from './Triggers';
import '../inventory/inventory.css';

// /notifications: channels (with a test send), templates with a live
// preview, rules, deliveries and dead letters with redeliver, and inbound
// triggers (webhooks that start jobs; their secret is shown once).
export default function NotificationRoutes() {
  const { can } = useAuth();
  return (
    <>
      <PageHeader title="Notifications" />
      <nav className="inv-tabs" aria-label="Notifications">
        <NavLink to="/notifications/channels">Channels</NavLink>
        <NavLink to="/notifications/templates">Templates</NavLink>
        <NavLink to="/notifications/rules">Rules</NavLink>
        <NavLink to="/notifications/deliveries">Deliveries</NavLink>
        <NavLink to="/notifications/dead-letters">Dead letters</NavLink>
        {can('jobs:read') && <NavLink to="/notifications/triggers">Inbound triggers</NavLink>}
      </nav>
      <Routes>
        <Route index element={<Navigate to="channels" replace />} />
        <Route path="channels" element={<Channels />} />
        <Route path="templates" element={<Templates />} />
        <Route path="templates/edit" element={<TemplateEditor />} />
        <Route path="rules" element={<Rules />} />
        <Route path="deliveries" element={<Deliveries />} />
        <Route path="dead-letters" element={<Deliveries key="dead" dead />} />
        <Route path="triggers" element={<Triggers />} />
        <Route path="*" element={<EmptyState title="No such notifications page" hint="Choose a tab above." />} />
      </Routes>
    </>
  );
}
