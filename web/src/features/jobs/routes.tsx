import { EmptyState } from '../../components/ui';

// Placeholder until the jobs pages land.
export default function Routes() {
  return <EmptyState title="jobs" hint="This page is being built." />;
}
