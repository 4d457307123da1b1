import { EmptyState } from '../../components/ui';

// Placeholder until the discovery pages land.
export default function Routes() {
  return <EmptyState title="discovery" hint="This page is being built." />;
}
