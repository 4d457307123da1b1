import { Route, Routes } from 'react-router';
import { EmptyState } from '../../components/ui';
import { TargetsPage } from './TargetsPage';
import { TargetDetail } from './TargetDetail';
import { GroupDetail, GroupsPage } from './Groups';
import './inventory.css';

// /inventory: targets (list, import, export), target detail with its
// relationships and graph, and groups.
export default function InventoryRoutes() {
  return (
    <Routes>
      <Route index element={<TargetsPage />} />
      <Route path="targets/:id" element={<TargetDetail />} />
      <Route path="groups" element={<GroupsPage />} />
      <Route path="groups/:name" element={<GroupDetail />} />
      <Route path="*" element={<EmptyState title="No such inventory page" hint="Go back to the target list." />} />
    </Routes>
  );
}
