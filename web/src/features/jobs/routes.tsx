import { lazy, Suspense } from 'react';
import { Route, Routes } from 'react-router';
import { Spinner } from '../../components/ui';
import { JobsList } from './JobsList';
import { JobDetailPage } from './JobDetail';
import './jobs.css';

// The designer pulls in React Flow and dagre: load it only when opened.
const Designer = lazy(() => import('./designer/Designer'));

export default function JobsRoutes() {
  const designer = (
    <Suspense fallback={<Spinner label="Loading the designer…" />}>
      <Designer />
    </Suspense>
  );
  return (
    <Routes>
      <Route index element={<JobsList />} />
      <Route path="new" element={designer} />
      <Route path=":name/edit" element={designer} />
      <Route path=":name" element={<JobDetailPage />} />
    </Routes>
  );
}
