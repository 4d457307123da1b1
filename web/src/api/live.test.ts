import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { QueryClient } from '@tanstack/react-query';
import { connectLive, type LiveSocket, type LiveStatus } from './live';

/** A socket the test drives: it opens, speaks and closes on command. */
class FakeSocket implements LiveSocket {
  onopen: ((ev: Event) => unknown) | null = null;
  onmessage: ((ev: MessageEvent) => unknown) | null = null;
  onclose: ((ev: CloseEvent) => unknown) | null = null;
  onerror: ((ev: Event) => unknown) | null = null;
  closed: { code?: number; reason?: string } | null = null;
  open() {
    this.onopen?.(new Event('open'));
  }
  send(m: unknown) {
    this.onmessage?.(new MessageEvent('message', { data: JSON.stringify(m) }));
  }
  drop(code = 1006) {
    this.onclose?.(new CloseEvent('close', { code }));
  }
  close(code?: number, reason?: string) {
    this.closed = { code, reason };
  }
}

function setup(opts: { refresh?: () => Promise<boolean>; random?: () => number } = {}) {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false, staleTime: Infinity } } });
  const sockets: FakeSocket[] = [];
  const statuses: LiveStatus[] = [];
  const refresh = vi.fn(opts.refresh ?? (() => Promise.resolve(true)));
  const stop = connectLive({
    queryClient: qc,
    open: () => {
      const s = new FakeSocket();
      sockets.push(s);
      return s;
    },
    refresh,
    onStatus: (s) => statuses.push(s),
    random: opts.random ?? (() => 0.5),
    minDelay: 100,
    maxDelay: 1000,
  });
  return { qc, sockets, statuses, refresh, stop };
}

/** Seeds queries and reports which of them are now invalid. */
function seed(qc: QueryClient, keys: unknown[][]) {
  for (const k of keys) qc.setQueryData(k, 'data');
  return () => keys.filter((k) => qc.getQueryState(k)?.isInvalidated).map((k) => k.join('/'));
}

describe('connectLive', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('is connecting until the hello, then live', async () => {
    const { sockets, statuses, stop } = setup();
    await vi.advanceTimersByTimeAsync(0);
    expect(sockets).toHaveLength(1);
    expect(statuses).toEqual(['connecting']);
    sockets[0]!.open();
    sockets[0]!.send({ type: 'hello', topics: ['runs'], index: 3 });
    expect(statuses).toEqual(['connecting', 'live']);
    stop();
    expect(sockets[0]!.closed?.code).toBe(1000);
  });

  it('invalidates exactly the queries whose key starts with a changed topic', async () => {
    const { qc, sockets, stop } = setup();
    const invalid = seed(qc, [['runs'], ['runs', 'r1'], ['jobs', 'deploy'], ['agents'], ['me', 'tok'], ['runsx']]);
    await vi.advanceTimersByTimeAsync(0);
    sockets[0]!.open();
    sockets[0]!.send({ type: 'hello', topics: ['runs', 'jobs', 'agents'], index: 1 });
    expect(invalid()).toEqual([]); // the first hello refetches nothing
    sockets[0]!.send({ type: 'changed', topics: ['runs', 'jobs'], index: 2 });
    expect(invalid()).toEqual(['runs', 'runs/r1', 'jobs/deploy']);
    stop();
  });

  it('ignores a message that is not JSON', async () => {
    const { qc, sockets, statuses, stop } = setup();
    const invalid = seed(qc, [['runs']]);
    await vi.advanceTimersByTimeAsync(0);
    sockets[0]!.open();
    sockets[0]!.onmessage?.(new MessageEvent('message', { data: 'not json' }));
    expect(invalid()).toEqual([]);
    expect(statuses).toEqual(['connecting']);
    stop();
  });

  it('reconnects after a drop with backoff and then refetches everything', async () => {
    const { qc, sockets, statuses, refresh, stop } = setup({ random: () => 0.99 });
    await vi.advanceTimersByTimeAsync(0);
    sockets[0]!.open();
    sockets[0]!.send({ type: 'hello', topics: ['runs'], index: 1 });
    const invalid = seed(qc, [['runs'], ['me', 'tok']]);

    sockets[0]!.drop(1001);
    expect(statuses.at(-1)).toBe('offline');
    expect(refresh).not.toHaveBeenCalled(); // it had opened: not an auth failure
    await vi.advanceTimersByTimeAsync(49);
    expect(sockets).toHaveLength(1); // waits at least minDelay/2
    await vi.advanceTimersByTimeAsync(100);
    expect(sockets).toHaveLength(2);
    expect(statuses.at(-1)).toBe('connecting');
    sockets[1]!.open();
    sockets[1]!.send({ type: 'hello', topics: ['runs'], index: 9 });
    expect(statuses.at(-1)).toBe('live');
    expect(invalid()).toEqual(['runs', 'me/tok']);
    stop();
  });

  it('backs off exponentially up to the ceiling while the server is down, and resets once live', async () => {
    const { sockets, stop } = setup({ random: () => 0.999 });
    await vi.advanceTimersByTimeAsync(0);
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      sockets.at(-1)!.open();
      sockets.at(-1)!.drop(); // opened, but never said hello
      const before = sockets.length;
      let waited = 0;
      while (sockets.length === before) {
        await vi.advanceTimersByTimeAsync(10);
        waited += 10;
        expect(waited).toBeLessThan(5000);
      }
      delays.push(waited);
    }
    // ~100, 200, 400, 800, then capped at 1000.
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000]);
    sockets.at(-1)!.open();
    sockets.at(-1)!.send({ type: 'hello', topics: [], index: 1 });
    sockets.at(-1)!.drop();
    const before = sockets.length;
    await vi.advanceTimersByTimeAsync(100);
    expect(sockets.length).toBe(before + 1); // back to the first delay
    stop();
  });

  it('renews the token when a socket fails before it opens, then reconnects', async () => {
    const { sockets, refresh, stop } = setup();
    await vi.advanceTimersByTimeAsync(0);
    sockets[0]!.drop(); // a refused upgrade (401) looks like this to a page
    expect(refresh).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(sockets).toHaveLength(2);
    stop();
  });

  it('stops retrying when there is no session to renew', async () => {
    const { sockets, statuses, refresh, stop } = setup({ refresh: () => Promise.resolve(false) });
    await vi.advanceTimersByTimeAsync(0);
    sockets[0]!.drop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(refresh).toHaveBeenCalledTimes(1);
    expect(sockets).toHaveLength(1);
    expect(statuses.at(-1)).toBe('offline');
    stop();
  });

  it('opens nothing after stop, even with a reconnect pending', async () => {
    const { sockets, stop } = setup();
    await vi.advanceTimersByTimeAsync(0);
    sockets[0]!.open();
    sockets[0]!.drop();
    stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sockets).toHaveLength(1);
  });

  it('opens no socket when stopped before the first connect (React double mount)', async () => {
    const { sockets, stop } = setup();
    stop();
    await vi.advanceTimersByTimeAsync(1000);
    expect(sockets).toHaveLength(0);
  });
});
