import { EmptyState } from '../../components/ui';

// Placeholder until the audit pages land.
export default function Routes() {
  return <EmptyState title="audit" hint="This page is being built." />;
}
