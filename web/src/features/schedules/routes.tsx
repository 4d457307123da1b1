import { EmptyState } from '../../components/ui';

// Placeholder until the schedules pages land.
export default function Routes() {
  return <EmptyState title="schedules" hint="This page is being built." />;
}
