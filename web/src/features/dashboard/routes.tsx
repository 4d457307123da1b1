import { EmptyState } from '../../components/ui';

// Placeholder until the dashboard pages land.
export default function Routes() {
  return <EmptyState title="dashboard" hint="This page is being built." />;
}
