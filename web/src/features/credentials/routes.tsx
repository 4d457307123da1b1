import { EmptyState } from '../../components/ui';

// Placeholder until the credentials pages land.
export default function Routes() {
  return <EmptyState title="credentials" hint="This page is being built." />;
}
