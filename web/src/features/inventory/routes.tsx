import { EmptyState } from '../../components/ui';

// Placeholder until the inventory pages land.
export default function Routes() {
  return <EmptyState title="inventory" hint="This page is being built." />;
}
