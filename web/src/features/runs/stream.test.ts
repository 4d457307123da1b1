import { describe, expect, it, vi } from 'vitest';
import { RunStream, type SocketLike, type StreamHandlers } from './stream';
import type { LogLine } from './types';

// A fake socket stands in for the browser's WebSocket: these are unit
// tests of the client's protocol handling (resume, gap, reconnect); the
// e2e suite runs it against a real controller.
class FakeSocket implements SocketLike {
  onopen: ((ev: Event) => void) | null = null;
  onmessage: ((ev: MessageEvent) => void) | null = null;
  onclose: ((ev: CloseEvent) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;
  closed: { code?: number; reason?: string } | null = null;
  constructor(readonly path: string) {}
  open() {
    this.onopen?.(new Event('open'));
  }
  send(ev: object) {
    this.onmessage?.({ data: JSON.stringify(ev) } as MessageEvent);
  }
  drop(code = 1006, reason = '') {
    this.onclose?.({ code, reason } as CloseEvent);
  }
  close(code?: number, reason?: string) {
    this.closed = { code, reason };
  }
}

function setup(opts: { renew?: () => Promise<unknown> } = {}) {
  const sockets: FakeSocket[] = [];
  const timers: { f: () => void; ms: number }[] = [];
  const h = {
    onLog: vi.fn<(l: LogLine[]) => void>(),
    onChange: vi.fn(),
    onGap: vi.fn(),
    onRestart: vi.fn(),
    onEnd: vi.fn(),
    onState: vi.fn(),
  } satisfies StreamHandlers;
  const s = new RunStream('run_1', h, {
    open: (p) => {
      const sock = new FakeSocket(p);
      sockets.push(sock);
      return sock;
    },
    renew: opts.renew,
    random: () => 0.5,
    setTimer: (f, ms) => timers.push({ f, ms }),
    clearTimer: () => {},
  });
  const fire = () => timers.shift()!.f();
  return { s, h, sockets, timers, fire };
}

const hello = (seq: number, epoch = 'e1', extra = {}) => ({ seq, type: 'hello', time: '', data: { run_id: 'run_1', epoch, head: 10, oldest: 1, ...extra } });
const log = (seq: number, data: string) => ({ seq, type: 'log', time: '', data: { target: 't', step: 's', attempt_id: 'a', try: 1, seq, stream: 'stdout', data, time: '' } });

describe('RunStream', () => {
  it('opens the run stream without a position, then hands over logs and changes', () => {
    const { s, h, sockets } = setup();
    s.start();
    expect(sockets[0]!.path).toBe('/api/v1/runs/run_1/stream');
    sockets[0]!.open();
    sockets[0]!.send(hello(0));
    expect(h.onState).toHaveBeenLastCalledWith('live', undefined);
    sockets[0]!.send(log(1, 'one\n'));
    sockets[0]!.send({ seq: 2, type: 'attempt', time: '', data: { target: 't', step: 's', status: 'running' } });
    sockets[0]!.send({ seq: 3, type: 'run', time: '', data: { status: 'running' } });
    expect(h.onLog).toHaveBeenCalledTimes(1);
    expect(h.onLog.mock.calls[0]![0]![0]!.data).toBe('one\n');
    expect(h.onChange.mock.calls.map((c) => c[0])).toEqual(['attempt', 'run']);
    expect(s.after).toBe(3);
    expect(s.epoch).toBe('e1');
  });

  it('reconnects after a drop and resumes after the last event of its epoch', () => {
    const { s, h, sockets, timers, fire } = setup();
    s.start();
    sockets[0]!.open();
    sockets[0]!.send(hello(0, 'abc'));
    sockets[0]!.send(log(1, 'x\n'));
    sockets[0]!.send(log(2, 'y\n'));
    sockets[0]!.drop(1006);
    expect(h.onState).toHaveBeenLastCalledWith('reconnecting', 'connection closed (1006)');
    expect(timers).toHaveLength(1);
    expect(sockets).toHaveLength(1); // waits for the timer, no busy loop
    fire();
    expect(sockets[1]!.path).toBe('/api/v1/runs/run_1/stream?after=2&epoch=abc');
    sockets[1]!.open();
    sockets[1]!.send(hello(2, 'abc'));
    expect(h.onState).toHaveBeenLastCalledWith('live', undefined);
    expect(h.onRestart).not.toHaveBeenCalled();
  });

  it('backs off exponentially while reconnects fail, up to the ceiling, and resets after a hello', () => {
    const { s, sockets, timers, fire } = setup();
    s.start();
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      sockets[i]!.drop(1006);
      delays.push(timers[0]!.ms);
      fire();
    }
    // random() = 0.5: delay = 3/4 of the base; base doubles from 500 ms to 10 s.
    expect(delays).toEqual([375, 750, 1500, 3000, 6000, 7500, 7500]);
    sockets[7]!.open();
    sockets[7]!.send(hello(0));
    sockets[7]!.drop(1006);
    expect(timers[0]!.ms).toBe(375);
  });

  it('renews the token before retrying a socket that never opened', async () => {
    const renew = vi.fn(() => Promise.resolve(true));
    const { s, sockets, fire } = setup({ renew });
    s.start();
    sockets[0]!.drop(1006); // refused upgrade: never opened
    fire();
    expect(renew).toHaveBeenCalledTimes(1);
    await Promise.resolve();
    await Promise.resolve();
    expect(sockets).toHaveLength(2);
    sockets[1]!.open();
    sockets[1]!.send(hello(0));
    sockets[1]!.drop(1006); // it had opened: no renewal this time
    fire();
    expect(renew).toHaveBeenCalledTimes(1);
    expect(sockets).toHaveLength(3);
  });

  it('reports a gap and resumes after its end', () => {
    const { s, h, sockets, fire } = setup();
    s.start();
    sockets[0]!.open();
    sockets[0]!.send(hello(0, 'e'));
    sockets[0]!.send({ seq: 40, type: 'gap', time: '', from: 3, to: 40 });
    expect(h.onGap).toHaveBeenCalledWith(3, 40);
    sockets[0]!.drop();
    fire();
    expect(sockets[1]!.path).toContain('after=40');
  });

  it('tells the viewer when the server restarted the sequence (another epoch)', () => {
    const { s, h, sockets } = setup();
    s.start();
    sockets[0]!.open();
    sockets[0]!.send(hello(0, 'new', { restarted: true }));
    expect(h.onRestart).toHaveBeenCalledTimes(1);
    expect(s.epoch).toBe('new');
  });

  it('stops at "end": the close that follows does not reconnect', () => {
    const { s, h, sockets, timers } = setup();
    s.start();
    sockets[0]!.open();
    sockets[0]!.send(hello(0));
    sockets[0]!.send({ seq: 5, type: 'end', time: '' });
    expect(h.onEnd).toHaveBeenCalledTimes(1);
    sockets[0]!.drop(1000, 'run ended');
    expect(timers).toHaveLength(0);
    expect(s.state).toBe('ended');
  });

  it('stop closes the socket and cancels a pending reconnect', () => {
    const { s, h, sockets, timers } = setup();
    s.start();
    sockets[0]!.open();
    s.stop();
    expect(sockets[0]!.closed).toEqual({ code: 1000, reason: 'viewer closed' });
    expect(h.onState).toHaveBeenLastCalledWith('closed', undefined);
    expect(timers).toHaveLength(0);
  });

  it('ignores a message that is not JSON', () => {
    const { s, h, sockets } = setup();
    s.start();
    sockets[0]!.onmessage?.({ data: 'garbage' } as MessageEvent);
    expect(h.onLog).not.toHaveBeenCalled();
    expect(s.after).toBe(0);
  });
});
