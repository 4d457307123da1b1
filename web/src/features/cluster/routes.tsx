import { EmptyState } from '../../components/ui';

// Placeholder until the cluster pages land.
export default function Routes() {
  return <EmptyState title="cluster" hint="This page is being built." />;
}
