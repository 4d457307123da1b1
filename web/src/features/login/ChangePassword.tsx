import { EmptyState } from '../../components/ui';

// Placeholder until the forced password change page lands.
export default function ChangePassword() {
  return <EmptyState title="Change your password" hint="This page is being built." />;
}
