import { useQuery } from '@tanstack/react-query';
import { api } from '../api/client';

// /health and the raft peer list, shared by the dashboard and the cluster
// page. Raft indexes and lag move with every write without a state change
// the live topics report, so these two refresh on a timer.

export interface RaftPeer { id: string; address: string; suffrage: string; leader: boolean }
export interface HealthDoc {
  status: string;
  node_id: string;
  version: string;
  raft?: {
    state: string; leader_id: string; leader_addr: string; term: number;
    last_index: number; commit_index: number; applied_index: number; last_contact_ms: number;
    peers: RaftPeer[];
  };
  history?: { backend: string; reachable: boolean; buffered: number; lag_ms: number; stored: number; failing: boolean; error?: string };
  agents?: { enrolled: number; revoked: number; down: number; connected: number };
  [section: string]: unknown;
}
export interface PeerStatus {
  id: string; address: string; suffrage: string; leader: boolean; reachable: boolean;
  term?: number; last_index?: number; applied_index?: number; trails_leader_by?: number; error?: string;
}
export interface PeersDoc { peers: PeerStatus[]; leader_id: string }

export const healthRefreshMs = 5000;

export function useHealth() {
  return useQuery({
    queryKey: ['cluster', 'health'],
    queryFn: () => api.get<HealthDoc>('/health'),
    refetchInterval: healthRefreshMs,
  });
}

export function usePeers(enabled: boolean) {
  return useQuery({
    queryKey: ['cluster', 'peers'],
    queryFn: () => api.get<PeersDoc>('/api/v1/operator/raft/peers'),
    enabled,
    refetchInterval: healthRefreshMs,
  });
}
