import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { createBrowserRouter, RouterProvider } from 'react-router';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { AuthProvider } from './app/auth';
import { Layout } from './app/Layout';
import { featureRoutes } from './app/routes';
import { applyTheme } from './app/theme';
import './styles.css';

applyTheme();

const queryClient = new QueryClient({
  defaultOptions: { queries: { retry: 1, refetchOnWindowFocus: false } },
});

const router = createBrowserRouter([
  { path: '/login', lazy: async () => ({ Component: (await import('./features/login/Login')).default }) },
  { path: '/password', lazy: async () => ({ Component: (await import('./features/login/ChangePassword')).default }) },
  { path: '/', Component: Layout, children: featureRoutes },
]);

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <AuthProvider>
        <RouterProvider router={router} />
      </AuthProvider>
    </QueryClientProvider>
  </StrictMode>,
);
