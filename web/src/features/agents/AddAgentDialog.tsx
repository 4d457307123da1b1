import { useState } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { api } from '../../api/client';
import { Button, Dialog, ErrorBox, Field } from '../../components/ui';
import { CopyButton, SecretBlock } from '../../components/CopyButton';
import { parseTags, type CreatedJoinToken } from './types';

/** Creates a join token and shows the command that enrols a host with it. */
export function AddAgentDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  const [ttl, setTtl] = useState('1h');
  const [uses, setUses] = useState('1');
  const [tags, setTags] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [created, setCreated] = useState<CreatedJoinToken | null>(null);
  const qc = useQueryClient();
  const parsed = parseTags(tags);
  const close = () => {
    setCreated(null);
    setError(null);
    onClose();
  };
  const runCmd = 'opsconductor-agent run --data-dir /var/lib/opsconductor-agent';
  return (
    <Dialog
      title="Add an agent"
      open={open}
      onClose={close}
      wide
      footer={created ? <Button variant="primary" onClick={close}>Done</Button> : (
        <>
          <Button onClick={close}>Cancel</Button>
          <Button
            variant="primary"
            busy={busy}
            disabled={parsed.problems.length > 0}
            onClick={async () => {
              setBusy(true);
              setError(null);
              try {
                const c = await api.post<CreatedJoinToken>('/api/v1/agents/join-tokens', {
                  ttl: ttl.trim() || undefined,
                  max_uses: Number(uses) || undefined,
                  tags: Object.keys(parsed.tags).length ? parsed.tags : undefined,
                });
                setCreated(c);
                void qc.invalidateQueries({ queryKey: ['agents', 'join-tokens'] });
              } catch (e) {
                setError(e);
              } finally {
                setBusy(false);
              }
            }}
          >
            Create join token
          </Button>
        </>
      )}
    >
      {!created ? (
        <>
          <p className="muted">A join token lets a host enrol once (or as many times as you allow) before it expires. The host then holds its own certificate; the token is not needed again.</p>
          <div className="row">
            <Field label="Valid for" hint="A duration: 30m, 1h, 24h."><input value={ttl} onChange={(e) => setTtl(e.target.value)} /></Field>
            <Field label="Uses" hint="How many hosts may enrol with it."><input type="number" min={1} value={uses} onChange={(e) => setUses(e.target.value)} /></Field>
          </div>
          <Field label="Tags" hint="Given to every agent that enrols with it, as key=value pairs: env=prod, rack=r12." error={parsed.problems.join('; ') || undefined}>
            <input value={tags} onChange={(e) => setTags(e.target.value)} placeholder="env=prod" />
          </Field>
          <ErrorBox error={error} />
        </>
      ) : (
        <>
          <div className="warn-box">The token is shown only now. Copy the command before you close this dialog.</div>
          <h3>1. On the host, enrol it</h3>
          <p className="muted">Install the <code>opsconductor-agent</code> binary on the host, then run as root (it checks the controller's agent CA against the pin before it sends the token):</p>
          <SecretBlock value={created.join_command} label="Join command" />
          <p className="muted">To keep the token out of the shell history, set <code>OPSCONDUCTOR_JOIN_TOKEN</code> instead of passing <code>--token</code>.</p>
          <h3>2. Start the agent</h3>
          <div className="secret-block"><pre aria-label="Run command">{runCmd}</pre><CopyButton text={runCmd} /></div>
          <p className="muted">It appears in the agents list as soon as it connects. Token <code>{created.id}</code> expires <time dateTime={created.expires_at}>{new Date(created.expires_at).toLocaleString()}</time>, after {created.max_uses} use{created.max_uses === 1 ? '' : 's'}.</p>
        </>
      )}
    </Dialog>
  );
}
