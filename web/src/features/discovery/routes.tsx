import { Route, Routes } from 'react-router';
import { EmptyState } from '../../components/ui';
import { DiscoveryPage } from './DiscoveryPage';
import { ScanDetail } from './ScanDetail';
import '../inventory/inventory.css';

// /discovery: profiles, scans with their progress, and a scan's hosts and
// what changed, with import of the chosen hosts.
export default function DiscoveryRoutes() {
  return (
    <Routes>
      <Route index element={<DiscoveryPage />} />
      <Route path="scans/:id" element={<ScanDetail />} />
      <Route path="*" element={<EmptyState title="No such discovery page" hint="Go back to the profiles." />} />
    </Routes>
  );
}
