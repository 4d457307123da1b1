import { EmptyState } from '../../components/ui';

// Placeholder until the runs pages land.
export default function Routes() {
  return <EmptyState title="runs" hint="This page is being built." />;
}
