import { EmptyState } from '../../components/ui';

// Placeholder until the agents pages land.
export default function Routes() {
  return <EmptyState title="agents" hint="This page is being built." />;
}
