import { lazy, Suspense } from 'react';
import { Route, Routes } from 'react-router';
import { EmptyState, Spinner } from '../../components/ui';
import RunsList from './RunsList';
import './runs.css';

// /runs: the list; /runs/<id>: one run, its graph, matrix and output. The
// run view (with the graph library) loads on first visit.
const RunView = lazy(() => import('./RunView'));

export default function RunsRoutes() {
  return (
    <Routes>
      <Route index element={<RunsList />} />
      <Route
        path=":id"
        element={
          <Suspense fallback={<Spinner label="Loading the run view…" />}>
            <RunView />
          </Suspense>
        }
      />
      <Route path="*" element={<EmptyState title="No such page" hint="Runs live at /runs and /runs/<run id>." />} />
    </Routes>
  );
}
