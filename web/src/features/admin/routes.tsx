import { EmptyState } from '../../components/ui';

// Placeholder until the admin pages land.
export default function Routes() {
  return <EmptyState title="admin" hint="This page is being built." />;
}
