import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent } from 'react';
import { useBlocker, useLocation, useNavigate, useParams, Link } from 'react-router';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import {
  Background, Controls, ReactFlow, ReactFlowProvider, useReactFlow,
  type Connection, type Edge, type EdgeChange, type NodeChange, type OnDelete,
} from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import { ApiError } from '../../../api/client';
import { Button, ErrorBox, PageHeader, Spinner, StatusBadge } from '../../../components/ui';
import { jobsApi, type CatalogStep, type JobPutResult } from '../api';
import { canRedo, canUndo, createHistory, push, redo, undo, type History } from './history';
import { autoLayout, completePositions, loadPositions, nodeHeight, nodeWidth, savePositions, type Positions } from './layout';
import {
  addStep, connect, disconnect, emptyDoc, fromYaml, problemsByStep, removeSteps, renameStep, toGraph, toYaml, updateStep,
  YamlError, type JobDoc, type Problem, type StepDoc,
} from './model';
import { dragType, findCatalog, Palette } from './Palette';
import { JobPanel } from './JobPanel';
import { StepNode, type StepFlowNode } from './StepNode';
import { StepPanel } from './StepPanel';
import './designer.css';

const nodeTypes = { step: StepNode };
const validateDelayMs = 400;

/** /jobs/new and /jobs/<name>/edit. */
export default function DesignerPage() {
  const { name } = useParams();
  const location = useLocation();
  const job = useQuery({
    queryKey: ['jobs', name, 'latest'],
    queryFn: () => jobsApi.get(name!),
    enabled: !!name,
    staleTime: Infinity, // an open editor must not be replaced under the author
  });
  const catalog = useQuery({ queryKey: ['plugins', 'steps'], queryFn: jobsApi.catalog });
  // A failed refetch must not replace an open editor: errors only count before the first load.
  if (name && job.error && !job.data) return <ErrorBox error={job.error} />;
  if (catalog.error && !catalog.data) return <ErrorBox error={catalog.error} />;
  if ((name && job.isPending) || catalog.isPending) return <Spinner label="Loading the designer…" />;
  let initial: JobDoc = emptyDoc();
  let loadError: string | undefined;
  if (name && job.data) {
    try {
      initial = fromYaml(job.data.version.source);
    } catch (e) {
      loadError = (e as Error).message;
    }
  }
  return (
    <ReactFlowProvider>
      <Designer key={name ?? '(new)'} jobName={name} initial={initial} initialSource={loadError || job.data?.version.source.trimStart().startsWith('{') ? undefined : job.data?.version.source} version={job.data?.latest_version} catalog={catalog.data ?? []} loadError={loadError}
        initialSaved={(location.state as { saved?: JobPutResult } | null)?.saved} />
    </ReactFlowProvider>
  );
}

function problemsOf(e: unknown): Problem[] {
  if (e instanceof ApiError) {
    const list = e.problem.details?.length ? e.problem.details : [e.problem];
    return list.map((d) => ({ field: d.field ?? '', message: d.message }));
  }
  return [{ field: '', message: e instanceof Error ? e.message : String(e) }];
}

function Designer({ jobName, initial, initialSource, version, catalog, loadError, initialSaved }: { jobName?: string; initial: JobDoc; initialSource?: string; version?: number; catalog: CatalogStep[]; loadError?: string; initialSaved?: JobPutResult }) {
  const navigate = useNavigate();
  const qc = useQueryClient();
  const flow = useReactFlow();
  const [hist, setHist] = useState<History<JobDoc>>(() => createHistory(initial));
  const doc = hist.present;
  const [savedYaml, setSavedYaml] = useState(() => toYaml(initial));
  const yaml = useMemo(() => toYaml(doc), [doc]);
  const dirty = yaml !== savedYaml;
  const leaving = useRef(false);
  const [positions, setPositions] = useState<Positions>(() => completePositions(initial, jobName ? loadPositions(jobName) : {}));
  const [selectedNodes, setSelectedNodes] = useState<Set<string>>(new Set());
  const [selectedEdges, setSelectedEdges] = useState<Set<string>>(new Set());
  const [tab, setTab] = useState<'canvas' | 'yaml'>('canvas');
  const [saved, setSaved] = useState<JobPutResult | null>(initialSaved ?? null);
  const [saveError, setSaveError] = useState<unknown>(null);
  const [saving, setSaving] = useState(false);

  const change = useCallback((fn: (d: JobDoc) => JobDoc, key?: string) => {
    setHist((h) => push(h, fn(h.present), key));
    setSaved(null);
  }, []);

  // Every step has a position; new ones (from the YAML tab, undo) get a spot.
  useEffect(() => {
    setPositions((p) => completePositions(doc, p));
  }, [doc]);

  // ---- YAML tab ----
  // The text shown is the author's own while it describes the current
  // document (typed in the tab, or the saved source with its comments);
  // any change from the canvas replaces it with the document's YAML.
  const [yamlState, setYamlState] = useState<{ text: string; doc: JobDoc; error: YamlError | null }>(() => ({
    text: initialSource ?? toYaml(initial), doc: initial, error: null,
  }));
  const yamlCurrent = yamlState.doc === doc;
  const yamlText = yamlCurrent ? yamlState.text : yaml;
  const yamlError = yamlCurrent ? yamlState.error : null;
  /** What is validated and saved: the author's text when it is the document, else the document's YAML. */
  const source = yamlCurrent && !yamlState.error ? yamlState.text : yaml;
  const onYamlChange = (text: string) => {
    try {
      const next = fromYaml(text);
      setYamlState({ text, doc: next, error: null });
      change(() => next, 'yaml');
    } catch (e) {
      setYamlState({ text, doc, error: e instanceof YamlError ? e : new YamlError(String(e)) });
    }
  };

  // ---- validation as you type ----
  const [problems, setProblems] = useState<Problem[]>([]);
  const [checking, setChecking] = useState(false);
  const pristine = !jobName && doc.steps.length === 0;
  useEffect(() => {
    // A new, empty job has nothing to check yet (and every check would be
    // a refusal the browser logs as an error).
    if (pristine) {
      setProblems([]);
      setChecking(false);
      return;
    }
    const ctl = new AbortController();
    const t = setTimeout(() => {
      setChecking(true);
      const local: Problem[] = doc.name ? [] : [{ field: 'name', message: 'required: give the job a name' }];
      jobsApi
        .validate(doc.name || jobName || 'untitled', source, ctl.signal)
        .then(() => setProblems(local))
        .catch((e: unknown) => {
          if (ctl.signal.aborted) return;
          setProblems([...local, ...problemsOf(e).filter((p) => !(local.length && p.field === 'name'))]);
        })
        .finally(() => !ctl.signal.aborted && setChecking(false));
    }, validateDelayMs);
    return () => {
      clearTimeout(t);
      ctl.abort();
    };
  }, [source, doc.name, jobName, pristine]);
  const byStep = useMemo(() => problemsByStep(problems), [problems]);

  // ---- graph ----
  const graph = useMemo(() => toGraph(doc), [doc]);
  const nodes: StepFlowNode[] = useMemo(
    () => graph.nodes.map((n) => ({
      id: n.id,
      type: 'step' as const,
      position: positions[n.step.id] ?? { x: 0, y: 0 },
      selected: selectedNodes.has(n.id),
      data: { step: n.step, index: n.index, problems: byStep.get(n.index) ?? [], summary: findCatalog(catalog, n.step.uses ?? '')?.summary },
    })),
    [graph, positions, selectedNodes, byStep, catalog],
  );
  const edges: Edge[] = useMemo(
    () => graph.edges.map((e) => ({
      id: e.id, source: e.source, target: e.target, data: { need: e.need }, selected: selectedEdges.has(e.id),
      // An on_failure handler runs only when what it needs failed: drawn dashed.
      className: doc.steps[Number(e.target)]?.on_failure ? 'edge-on-failure' : undefined,
    })),
    [graph, selectedEdges, doc],
  );

  const onNodesChange = useCallback((changes: NodeChange<StepFlowNode>[]) => {
    let sel: Set<string> | null = null;
    for (const c of changes) {
      if (c.type === 'position' && c.position) {
        const step = doc.steps[Number(c.id)];
        if (step) setPositions((p) => ({ ...p, [step.id]: c.position! }));
      } else if (c.type === 'select') {
        sel ??= new Set(selectedNodes);
        if (c.selected) sel.add(c.id);
        else sel.delete(c.id);
      }
    }
    if (sel) setSelectedNodes(sel);
  }, [doc, selectedNodes]);

  const onEdgesChange = useCallback((changes: EdgeChange[]) => {
    let sel: Set<string> | null = null;
    for (const c of changes) {
      if (c.type === 'select') {
        sel ??= new Set(selectedEdges);
        if (c.selected) sel.add(c.id);
        else sel.delete(c.id);
      }
    }
    if (sel) setSelectedEdges(sel);
  }, [selectedEdges]);

  const onDelete: OnDelete<StepFlowNode, Edge> = useCallback(({ nodes: ns, edges: es }) => {
    const gone = new Set(ns.map((n) => Number(n.id)));
    change((d) => {
      let next = d;
      for (const e of es) {
        const target = Number(e.target);
        if (!gone.has(target)) next = disconnect(next, (e.data as { need: string }).need, target);
      }
      return gone.size ? removeSteps(next, [...gone]) : next;
    });
    setSelectedNodes(new Set());
    setSelectedEdges(new Set());
  }, [change]);

  const onConnect = useCallback((c: Connection) => change((d) => connect(d, Number(c.source), Number(c.target))), [change]);

  const docRef = useRef(doc);
  docRef.current = doc;
  const add = useCallback((uses: string, at?: { x: number; y: number }) => {
    const r = addStep(docRef.current, uses);
    setHist((h) => push(h, r.doc));
    setSaved(null);
    setPositions((p) => ({ ...p, [r.id]: at ?? { x: 40, y: 40 + Object.keys(p).length * (nodeHeight + 30) } }));
    // Select the new step so that the panel opens on it.
    setSelectedNodes(new Set([String(r.doc.steps.length - 1)]));
    setSelectedEdges(new Set());
  }, []);

  const onDrop = useCallback((e: DragEvent) => {
    const uses = e.dataTransfer.getData(dragType);
    if (!uses) return;
    e.preventDefault();
    const p = flow.screenToFlowPosition({ x: e.clientX, y: e.clientY });
    add(uses, { x: p.x - nodeWidth / 2, y: p.y - nodeHeight / 2 });
  }, [flow, add]);

  const layoutNow = useCallback(() => {
    setPositions(autoLayout(doc));
    requestAnimationFrame(() => flow.fitView({ padding: 0.2 }));
  }, [doc, flow]);

  // Positions are saved per job in the browser, never in the definition.
  // A new job's layout is kept once it has a name (on save).
  useEffect(() => {
    if (jobName) savePositions(jobName, positions);
  }, [positions, jobName]);

  // ---- undo / redo ----
  const doUndo = useCallback(() => setHist((h) => undo(h)), []);
  const doRedo = useCallback(() => setHist((h) => redo(h)), []);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (!(e.ctrlKey || e.metaKey)) return;
      const t = e.target as HTMLElement;
      if (t.closest('input, textarea, select, [contenteditable]')) return; // the field's own undo
      const k = e.key.toLowerCase();
      if (k === 'z' && !e.shiftKey) {
        e.preventDefault();
        doUndo();
      } else if ((k === 'z' && e.shiftKey) || k === 'y') {
        e.preventDefault();
        doRedo();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [doUndo, doRedo]);

  // ---- save ----
  const blocker = useBlocker(({ currentLocation, nextLocation }) => dirty && !leaving.current && currentLocation.pathname !== nextLocation.pathname);
  useEffect(() => {
    if (!dirty) return;
    const h = (e: BeforeUnloadEvent) => e.preventDefault();
    window.addEventListener('beforeunload', h);
    return () => window.removeEventListener('beforeunload', h);
  }, [dirty]);

  const save = async () => {
    const target = jobName ?? doc.name ?? '';
    if (!target) {
      setSaveError(new Error('Give the job a name first (Job settings: click an empty spot on the canvas).'));
      return;
    }
    setSaving(true);
    setSaveError(null);
    try {
      const res = await jobsApi.put(target, source);
      setSaved(res);
      setSavedYaml(yaml);
      void qc.invalidateQueries({ queryKey: ['jobs'] });
      if (!jobName) {
        savePositions(target, positions);
        leaving.current = true;
        navigate(`/jobs/${encodeURIComponent(target)}/edit`, { replace: true, state: { saved: res } });
      }
    } catch (e) {
      setSaveError(e);
    } finally {
      setSaving(false);
    }
  };

  // ---- panel ----
  const focus = selectedNodes.size === 1 ? Number([...selectedNodes][0]) : undefined;
  const focusStep: StepDoc | undefined = focus !== undefined ? doc.steps[focus] : undefined;
  const currentVersion = saved?.version.version ?? version;
  const general = byStep.get(-1) ?? [];

  return (
    <div className="designer">
      <PageHeader
        title={jobName ? <>Edit <Link to={`/jobs/${encodeURIComponent(jobName)}`}>{jobName}</Link></> : 'New job'}
        actions={
          <>
            <Button onClick={doUndo} disabled={!canUndo(hist)} title="Undo (Ctrl+Z)" aria-label="Undo">Undo</Button>
            <Button onClick={doRedo} disabled={!canRedo(hist)} title="Redo (Ctrl+Shift+Z)" aria-label="Redo">Redo</Button>
            <Button onClick={layoutNow} disabled={doc.steps.length === 0}>Auto-layout</Button>
            <Button variant="primary" busy={saving} onClick={() => void save()} disabled={!dirty && !!jobName}>Save</Button>
          </>
        }
      >
        <div className="designer-status" aria-live="polite">
          {currentVersion !== undefined && <span className="muted">version {currentVersion}</span>}
          {saved && (
            <span data-testid="save-result">
              {saved.unchanged ? `No changes: still version ${saved.version.version}` : `Saved version ${saved.version.version}`}
            </span>
          )}
          {dirty && <StatusBadge status="unsaved changes" tone="warn" />}
          {pristine ? <StatusBadge status="empty" tone="idle" /> : checking ? <Spinner label="Checking…" /> : problems.length === 0 ? <StatusBadge status="valid" tone="ok" /> : <StatusBadge status={`${problems.length} problem${problems.length === 1 ? '' : 's'}`} tone="bad" />}
        </div>
      </PageHeader>
      {loadError && <ErrorBox error={new Error(`The saved definition does not read as YAML: ${loadError}`)} />}
      <ErrorBox error={saveError} />
      <div className="designer-tabs" role="tablist">
        <button role="tab" aria-selected={tab === 'canvas'} className={tab === 'canvas' ? 'active' : ''} onClick={() => setTab('canvas')}>Canvas</button>
        <button role="tab" aria-selected={tab === 'yaml'} className={tab === 'yaml' ? 'active' : ''} onClick={() => setTab('yaml')}>YAML</button>
      </div>
      <div className="designer-body">
        <Palette catalog={catalog} onAdd={(u) => add(u)} />
        <div className="designer-main">
          {tab === 'canvas' ? (
            <div className="designer-canvas" onDragOver={(e) => { e.preventDefault(); e.dataTransfer.dropEffect = 'move'; }} onDrop={onDrop}>
              <ReactFlow<StepFlowNode, Edge>
                nodes={nodes}
                edges={edges}
                nodeTypes={nodeTypes}
                onNodesChange={onNodesChange}
                onEdgesChange={onEdgesChange}
                onConnect={onConnect}
                onDelete={onDelete}
                deleteKeyCode={['Delete', 'Backspace']}
                fitView={initial.steps.length > 0}
                fitViewOptions={{ padding: 0.2, maxZoom: 1 }}
                proOptions={{ hideAttribution: true }}
              >
                <Background gap={16} />
                <Controls />
              </ReactFlow>
              {doc.steps.length === 0 && (
                <div className="canvas-empty muted">Drag a step from the catalog on the left to start. Connect a step's bottom handle to another's top to make the second need the first.</div>
              )}
            </div>
          ) : (
            <div className="designer-yaml">
              <textarea aria-label="Job YAML" spellCheck={false} value={yamlText} onChange={(e) => onYamlChange(e.target.value)} className={yamlError ? 'has-error' : ''} />
              {yamlError && (
                <p className="field-message" role="alert" data-testid="yaml-error">
                  {yamlError.message} — the canvas keeps the last definition that read.
                </p>
              )}
            </div>
          )}
          <section className="designer-problems" aria-label="Problems">
            {problems.length === 0 ? (
              <span className="muted">{pristine ? 'Drag a step onto the canvas; the definition is checked as you build it.' : checking ? 'Checking the definition…' : 'No problems found.'}</span>
            ) : (
              <ul>
                {problems.map((p, i) => {
                  const m = /^steps\[(\d+)\]/.exec(p.field);
                  const idx = m ? Number(m[1]) : undefined;
                  return (
                    <li key={i}>
                      {idx !== undefined ? (
                        <button className="link" onClick={() => { setTab('canvas'); setSelectedNodes(new Set([String(idx)])); }}>
                          <code>{p.field}</code>
                        </button>
                      ) : (
                        <code>{p.field || 'job'}</code>
                      )}{' '}
                      {p.message}
                    </li>
                  );
                })}
              </ul>
            )}
          </section>
        </div>
        <aside className="designer-panel">
          {focusStep && focus !== undefined ? (
            <StepPanel
              key={focus}
              step={focusStep}
              catalog={findCatalog(catalog, focusStep.uses ?? '')}
              problems={byStep.get(focus) ?? []}
              onChange={(fn, key) => change((d) => updateStep(d, focus, fn), `steps[${focus}].${key}`)}
              onRename={(id) => {
                const old = focusStep.id;
                change((d) => renameStep(d, focus, id), `steps[${focus}].id`);
                setPositions((p) => {
                  if (!p[old] || p[id]) return p;
                  const { [old]: pos, ...rest } = p;
                  return { ...rest, [id]: pos! };
                });
              }}
              onDelete={() => {
                change((d) => removeSteps(d, [focus]));
                setSelectedNodes(new Set());
              }}
            />
          ) : (
            <JobPanel doc={doc} nameLocked={!!jobName} problems={general} onChange={(fn, key) => change(fn, key)} />
          )}
        </aside>
      </div>
      {blocker.state === 'blocked' && (
        <div className="dialog-backdrop">
          <div className="dialog" role="alertdialog" aria-label="Unsaved changes">
            <header><h2>Leave without saving?</h2></header>
            <div className="dialog-body">The job has changes that are not saved. They will be lost.</div>
            <footer>
              <Button onClick={() => blocker.reset()}>Stay</Button>
              <Button variant="danger" onClick={() => blocker.proceed()}>Leave</Button>
            </footer>
          </div>
        </div>
      )}
    </div>
  );
}
