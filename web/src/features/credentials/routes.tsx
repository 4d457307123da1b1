import { Route, Routes } from 'react-router';
import { EmptyState } from '../../components/ui';
import { CredentialsPage } from './CredentialsPage';
import { CredentialDetail } from './CredentialDetail';
import '../inventory/inventory.css';
import './credentials.css';

// /credentials: metadata, create/replace with write-only secrets,
// attachments, and the keyring's state.
export default function CredentialRoutes() {
  return (
    <Routes>
      <Route index element={<CredentialsPage />} />
      <Route path=":name" element={<CredentialDetail />} />
      <Route path="*" element={<EmptyState title="No such credentials page" hint="Go back to the credential list." />} />
    </Routes>
  );
}
