import { EmptyState } from '../../components/ui';

// Placeholder until the notifications pages land.
export default function Routes() {
  return <EmptyState title="notifications" hint="This page is being built." />;
}
