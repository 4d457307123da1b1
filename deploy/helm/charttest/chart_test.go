package charttest

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

const historyDSN = "history.dsn=postgres://opsconductor@postgres.db.svc:5432/opsconductor?sslmode=require"

// chartCase is one value set and what the render must then hold.
type chartCase struct {
	name string
	sets []string
	// replicas and ports are what the values ask for.
	replicas           int
	http, agent, raft  int
	agents, hostAccess bool
	// userSecrets are the Secrets the values name and the chart must not
	// render, with the keys it reads from each.
	userSecrets map[string][]string
	// historyPasswordFile: --history-password-file is passed.
	historyPasswordFile bool
}

func chartCases() []chartCase {
	def := func(c chartCase) chartCase {
		if c.replicas == 0 {
			c.replicas = 3
		}
		if c.http == 0 {
			c.http, c.agent, c.raft = 3000, 3001, 3002
		}
		return c
	}
	return []chartCase{
		def(chartCase{name: "defaults with a history URL generate every secret", sets: []string{historyDSN}}),
		def(chartCase{
			name: "existing secrets are used and none is generated",
			sets: []string{"history.existingSecret=pg", "history.passwordKey=pgpass", "tls.existingSecret=oc-ca",
				"keyring.existingSecret=oc-keys", "admin.existingSecret=oc-admin"},
			userSecrets: map[string][]string{"pg": {"dsn", "pgpass"}, "oc-ca": {"cluster-ca.pem", "cluster-ca-key.pem"},
				"oc-keys": {"keyring.key"}, "oc-admin": {"password"}},
			historyPasswordFile: true,
		}),
		def(chartCase{name: "five controllers bootstrap five voters", sets: []string{historyDSN, "replicas=5"}, replicas: 5}),
		def(chartCase{name: "a single controller bootstraps alone", sets: []string{historyDSN, "replicas=1"}, replicas: 1}),
		def(chartCase{name: "other ports reach every place that names them",
			sets: []string{historyDSN, "ports.http=8080", "ports.agent=8443", "ports.raft=8300", "agent.enabled=true", "agent.joinSecret=join"},
			http: 8080, agent: 8443, raft: 8300, agents: true, hostAccess: true,
			userSecrets: map[string][]string{"join": {"token", "ca-pin"}}}),
		def(chartCase{name: "agents on every node get the host",
			sets:   []string{historyDSN, "agent.enabled=true", "agent.joinSecret=join", "agent.tags=env=prod,team=ops"},
			agents: true, hostAccess: true, userSecrets: map[string][]string{"join": {"token", "ca-pin"}}}),
		def(chartCase{name: "agents without host access run unprivileged",
			sets:   []string{historyDSN, "agent.enabled=true", "agent.joinSecret=join", "agent.hostAccess=false"},
			agents: true, userSecrets: map[string][]string{"join": {"token", "ca-pin"}}}),
	}
}

func TestChartRendersConsistentObjects(t *testing.T) {
	for _, c := range chartCases() {
		t.Run(c.name, func(t *testing.T) {
			r := must(t, values(t, c.sets...))
			checkMetadata(t, r)
			pod := checkControllers(t, r, c)
			checkSecretRefs(t, r, c)
			checkAgents(t, r, c, pod)
			if !strings.Contains(r.notes, "kubectl -n ops get secret") {
				t.Errorf("NOTES.txt does not say how to read the admin password:\n%s", r.notes)
			}
		})
	}
}

func checkMetadata(t *testing.T, r *rendered) {
	t.Helper()
	for _, m := range r.metas {
		id := m.Kind + " " + m.Metadata.Name
		if errs := validation.IsDNS1123Subdomain(m.Metadata.Name); len(errs) > 0 {
			t.Errorf("%s: name: %v", id, errs)
		}
		if m.Metadata.Namespace != namespace {
			t.Errorf("%s: namespace %q, want the release's %q", id, m.Metadata.Namespace, namespace)
		}
		if m.Metadata.Labels["app.kubernetes.io/instance"] != releaseName {
			t.Errorf("%s: no app.kubernetes.io/instance=%s label: %v", id, releaseName, m.Metadata.Labels)
		}
	}
}

// flags splits container args "--name=value" into name -> values. Every
// flag the chart passes uses the = form, so a value can never be taken
// for a flag.
func flags(t *testing.T, who string, args []string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, a := range args {
		if !strings.HasPrefix(a, "--") {
			t.Errorf("%s: argument %q is not a --flag=value", who, a)
			continue
		}
		name, val, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ok {
			t.Errorf("%s: flag %q has no =value", who, a)
		}
		out[name] = append(out[name], val)
	}
	return out
}

func one(t *testing.T, f map[string][]string, name string) string {
	t.Helper()
	v := f[name]
	if len(v) != 1 {
		t.Errorf("--%s given %d times (%v), want once", name, len(v), v)
		return ""
	}
	return v[0]
}

func port(t *testing.T, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Errorf("%q: %v", hostport, err)
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

func containerPort(c corev1.Container, name string) int {
	for _, p := range c.Ports {
		if p.Name == name {
			return int(p.ContainerPort)
		}
	}
	return 0
}

func selects(t *testing.T, sel *metav1.LabelSelector, l map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("selector %v: %v", sel, err)
	}
	if s.Empty() {
		t.Errorf("selector %v selects everything", sel)
	}
	return s.Matches(labels.Set(l))
}

// checkControllers checks the StatefulSet, its Services and its PDB, and
// returns its pod template.
func checkControllers(t *testing.T, r *rendered, c chartCase) corev1.PodTemplateSpec {
	t.Helper()
	if len(r.statefulSets) != 1 {
		t.Fatalf("%d StatefulSets, want 1", len(r.statefulSets))
	}
	sts := r.statefulSets[0]
	pod := sts.Spec.Template
	if sts.Name != "oc-opsconductor" {
		t.Errorf("StatefulSet is named %q, want oc-opsconductor", sts.Name)
	}
	if sts.Spec.Replicas == nil || int(*sts.Spec.Replicas) != c.replicas {
		t.Errorf("replicas %v, want %d", sts.Spec.Replicas, c.replicas)
	}
	if sts.Spec.PodManagementPolicy != "Parallel" {
		t.Errorf("podManagementPolicy %q: the controllers of a new cluster must start together", sts.Spec.PodManagementPolicy)
	}
	if !selects(t, sts.Spec.Selector, pod.Labels) {
		t.Errorf("StatefulSet selector %v does not select its pods %v", sts.Spec.Selector, pod.Labels)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d controller containers, want 1", len(pod.Spec.Containers))
	}
	ctr := pod.Spec.Containers[0]
	if len(ctr.Args) == 0 || ctr.Args[0] != "server" {
		t.Fatalf("controller args %v do not start with the server command", ctr.Args)
	}
	f := flags(t, "controller", ctr.Args[1:])

	// Ports: flag, container port, value and Services agree.
	for _, p := range []struct {
		flag, name string
		want       int
	}{{"http-addr", "http", c.http}, {"agent-addr", "agent", c.agent}, {"raft-addr", "raft", c.raft}} {
		if got := port(t, one(t, f, p.flag)); got != p.want {
			t.Errorf("--%s listens on port %d, want %d", p.flag, got, p.want)
		}
		if got := containerPort(ctr, p.name); got != p.want {
			t.Errorf("container port %q is %d, want %d", p.name, got, p.want)
		}
	}

	// The headless Service: stable names for Raft, before readiness.
	peers, ok := r.services[sts.Spec.ServiceName]
	if !ok {
		t.Fatalf("StatefulSet serviceName %q is not a rendered Service (have %v)", sts.Spec.ServiceName, sortedKeys(r.services))
	}
	if peers.Spec.ClusterIP != "None" {
		t.Errorf("Service %s: clusterIP %q, want None (headless)", peers.Name, peers.Spec.ClusterIP)
	}
	if !peers.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s: publishNotReadyAddresses is off: controllers could not find each other before there is a leader", peers.Name)
	}
	api, ok := r.services[sts.Name]
	if !ok {
		t.Fatalf("no Service %s for HTTP and agents", sts.Name)
	}
	if api.Spec.PublishNotReadyAddresses || api.Spec.ClusterIP == "None" {
		t.Errorf("Service %s must be a normal Service that only sends to ready controllers", api.Name)
	}
	for _, svc := range []*corev1.Service{peers, api} {
		if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, pod.Labels) {
			t.Errorf("Service %s selector %v does not select the controllers %v", svc.Name, svc.Spec.Selector, pod.Labels)
		}
		for _, p := range svc.Spec.Ports {
			if cp := containerPort(ctr, p.TargetPort.String()); cp == 0 {
				t.Errorf("Service %s port %s: targetPort %q is no container port", svc.Name, p.Name, p.TargetPort.String())
			} else if int(p.Port) != cp {
				t.Errorf("Service %s port %s is %d but the container's is %d", svc.Name, p.Name, p.Port, cp)
			}
		}
	}
	if int(servicePort(api, "http")) != c.http || int(servicePort(api, "agent")) != c.agent {
		t.Errorf("Service %s ports %v, want http %d and agent %d", api.Name, api.Spec.Ports, c.http, c.agent)
	}
	if int(servicePort(peers, "raft")) != c.raft {
		t.Errorf("Service %s has no raft port %d: %v", peers.Name, c.raft, peers.Spec.Ports)
	}

	// Identity: node ID and advertised name come from the pod name, and
	// each controller finds itself in --retry-join by the exact string it
	// advertises (the server skips that entry).
	if got := envFieldRef(ctr, "POD_NAME"); got != "metadata.name" {
		t.Errorf("POD_NAME comes from %q, want the pod's metadata.name", got)
	}
	if got := one(t, f, "node-id"); got != "$(POD_NAME)" {
		t.Errorf("--node-id=%s, want $(POD_NAME)", got)
	}
	advertise := one(t, f, "advertise")
	var join []string
	if c.replicas == 1 {
		if len(f["retry-join"]) > 0 || len(f["bootstrap-expect"]) > 0 {
			t.Errorf("a single controller got --retry-join %v and --bootstrap-expect %v", f["retry-join"], f["bootstrap-expect"])
		}
	} else {
		join = strings.Split(one(t, f, "retry-join"), ",")
		if got := one(t, f, "bootstrap-expect"); got != strconv.Itoa(c.replicas) {
			t.Errorf("--bootstrap-expect=%s, want %d", got, c.replicas)
		}
		if len(join) != c.replicas {
			t.Errorf("--retry-join lists %d servers, want %d: %v", len(join), c.replicas, join)
		}
	}
	for i := range c.replicas {
		podName := fmt.Sprintf("%s-%d", sts.Name, i)
		self := strings.ReplaceAll(advertise, "$(POD_NAME)", podName)
		want := fmt.Sprintf("%s.%s.%s.svc", podName, peers.Name, namespace)
		if self != want {
			t.Errorf("pod %s advertises %q, want its name under the headless Service %q", podName, self, want)
		}
		if c.replicas > 1 && !slices.Contains(join, net.JoinHostPort(self, strconv.Itoa(c.raft))) {
			t.Errorf("pod %s: its Raft address %s:%d is not in --retry-join %v", podName, self, c.raft, join)
		}
	}

	// Storage: the data dir is the claim template's volume.
	dataDir := one(t, f, "data-dir")
	if len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("%d volumeClaimTemplates, want 1", len(sts.Spec.VolumeClaimTemplates))
	}
	vct := sts.Spec.VolumeClaimTemplates[0]
	if q, ok := vct.Spec.Resources.Requests[corev1.ResourceStorage]; !ok || q.IsZero() {
		t.Errorf("volumeClaimTemplate %s requests no storage", vct.Name)
	}
	if got := mountOf(ctr, dataDir); got == nil || got.Name != vct.Name {
		t.Errorf("--data-dir=%s is not on the claim template's volume %q (mount %v)", dataDir, vct.Name, got)
	}
	volumes := map[string]corev1.Volume{vct.Name: {Name: vct.Name}}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range ctr.VolumeMounts {
		if _, ok := volumes[m.Name]; !ok {
			t.Errorf("mount %s of volume %q: no such volume", m.MountPath, m.Name)
		}
	}
	// Files named by flags exist in what is mounted there.
	for name, vals := range f {
		if !strings.HasSuffix(name, "-file") && !strings.HasPrefix(name, "tls-ca-") {
			continue
		}
		for _, p := range vals {
			checkMountedFile(t, ctr, volumes, "--"+name, p)
		}
	}
	if got := len(f["history-password-file"]) == 1; got != c.historyPasswordFile {
		t.Errorf("--history-password-file passed: %v, want %v", got, c.historyPasswordFile)
	}

	// Probes and the security context.
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"startup", ctr.StartupProbe, "/health"}, {"liveness", ctr.LivenessProbe, "/health"}, {"readiness", ctr.ReadinessProbe, "/health/ready"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || containerPort(ctr, p.probe.HTTPGet.Port.String()) != c.http {
			t.Errorf("%s probe GET %s on port %q, want %s on the HTTP port", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path)
		}
	}
	psc, sc := pod.Spec.SecurityContext, ctr.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 || psc.FSGroup == nil {
		t.Errorf("pod security context %+v: want runAsNonRoot, a non-zero runAsUser and an fsGroup for the data volume", psc)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("container security context %+v: want a read-only root, no privilege escalation, all capabilities dropped", sc)
	}
	if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Errorf("controllers get a Kubernetes API token they never use")
	}
	if _, ok := r.accounts[pod.Spec.ServiceAccountName]; !ok {
		t.Errorf("serviceAccountName %q is not rendered (have %v)", pod.Spec.ServiceAccountName, sortedKeys(r.accounts))
	}

	// The PDB covers exactly the controllers.
	if len(r.pdbs) != 1 {
		t.Fatalf("%d PodDisruptionBudgets, want 1", len(r.pdbs))
	}
	pdb := r.pdbs[0]
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
		t.Errorf("PDB maxUnavailable %v minAvailable %v, want maxUnavailable 1", pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
	}
	if !selects(t, pdb.Spec.Selector, pod.Labels) {
		t.Errorf("PDB selector %v does not select the controllers %v", pdb.Spec.Selector, pod.Labels)
	}
	return pod
}

func servicePort(s *corev1.Service, name string) int32 {
	for _, p := range s.Spec.Ports {
		if p.Name == name {
			return p.Port
		}
	}
	return 0
}

func envFieldRef(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			return e.ValueFrom.FieldRef.FieldPath
		}
	}
	return ""
}

func envValue(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, e.ValueFrom == nil
		}
	}
	return "", false
}

// mountOf returns the mount that holds path (the longest prefix).
func mountOf(c corev1.Container, p string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if (p == m.MountPath || strings.HasPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/")) &&
			(best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	return best
}

func checkMountedFile(t *testing.T, c corev1.Container, volumes map[string]corev1.Volume, flag, p string) {
	t.Helper()
	m := mountOf(c, p)
	if m == nil {
		t.Errorf("%s=%s: nothing is mounted there", flag, p)
		return
	}
	v := volumes[m.Name]
	if v.Secret == nil {
		t.Errorf("%s=%s: mount %s is volume %q, not a Secret", flag, p, m.MountPath, m.Name)
		return
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(p, m.MountPath), "/")
	for _, it := range v.Secret.Items {
		if it.Path == rel {
			return
		}
	}
	t.Errorf("%s=%s: Secret volume %q projects no %q (items %v)", flag, p, m.Name, rel, v.Secret.Items)
}

// checkSecretRefs checks that every Secret a pod reads is either rendered
// with the key it reads, or one the values name for the user to create.
func checkSecretRefs(t *testing.T, r *rendered, c chartCase) {
	t.Helper()
	used := map[string]map[string]bool{}
	use := func(name, key string) {
		if used[name] == nil {
			used[name] = map[string]bool{}
		}
		used[name][key] = true
	}
	var pods []corev1.PodSpec
	for _, s := range r.statefulSets {
		pods = append(pods, s.Spec.Template.Spec)
	}
	for _, d := range r.daemonSets {
		pods = append(pods, d.Spec.Template.Spec)
	}
	for _, p := range pods {
		for _, v := range p.Volumes {
			if v.Secret == nil {
				continue
			}
			if len(v.Secret.Items) == 0 {
				t.Errorf("Secret volume %q projects every key: name the keys it needs", v.Name)
			}
			for _, it := range v.Secret.Items {
				use(v.Secret.SecretName, it.Key)
			}
		}
		for _, ctr := range slices.Concat(p.InitContainers, p.Containers) {
			for _, e := range ctr.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					use(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
				}
			}
			if len(ctr.EnvFrom) > 0 {
				t.Errorf("container %s uses envFrom: name each variable", ctr.Name)
			}
		}
	}
	for name, keys := range used {
		if want, ok := c.userSecrets[name]; ok {
			if _, rendered := r.secrets[name]; rendered {
				t.Errorf("Secret %s is the user's but the chart renders it too", name)
			}
			if got := sortedKeys(keys); !slices.Equal(got, sorted(want)) {
				t.Errorf("user Secret %s: the pods read keys %v, want %v", name, got, sorted(want))
			}
			continue
		}
		s, ok := r.secrets[name]
		if !ok {
			t.Errorf("Secret %s is read by a pod but neither rendered nor named in the values (rendered: %v)", name, sortedKeys(r.secrets))
			continue
		}
		for k := range keys {
			if len(s.Data[k]) == 0 {
				t.Errorf("Secret %s has no key %q", name, k)
			}
		}
	}
	for name := range c.userSecrets {
		if used[name] == nil {
			t.Errorf("Secret %s named in the values is read by no pod", name)
		}
	}
	for name, s := range r.secrets {
		if used[name] == nil {
			t.Errorf("Secret %s is rendered but read by no pod", name)
		}
		if s.Annotations["helm.sh/resource-policy"] != "keep" && !strings.HasSuffix(name, "-history") {
			t.Errorf("generated Secret %s would be deleted by helm uninstall while the volumes it opens stay", name)
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// entrypointVars reads the variables the agent image's entrypoint
// (deploy/docker/agent-entrypoint.sh) documents, so that the DaemonSet's
// environment follows a rename there.
func entrypointVars(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile(agentEntrypoint)
	if err != nil {
		t.Fatalf("read the agent image's entrypoint: %v", err)
	}
	vars := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#\s+(OPSCONDUCTOR_[A-Z_]+)`).FindAllStringSubmatch(string(src), -1) {
		vars[m[1]] = true
	}
	if len(vars) < 3 {
		t.Fatalf("%s documents %d variables; its header format changed?", agentEntrypoint, len(vars))
	}
	return vars
}

const agentEntrypoint = "../../docker/agent-entrypoint.sh"

func checkAgents(t *testing.T, r *rendered, c chartCase, controllerPod corev1.PodTemplateSpec) {
	t.Helper()
	if !c.agents {
		if len(r.daemonSets) != 0 {
			t.Errorf("agents are off but %d DaemonSets are rendered", len(r.daemonSets))
		}
		return
	}
	if len(r.daemonSets) != 1 {
		t.Fatalf("%d DaemonSets, want the agents'", len(r.daemonSets))
	}
	ds := r.daemonSets[0]
	pod := ds.Spec.Template
	if !selects(t, ds.Spec.Selector, pod.Labels) {
		t.Errorf("DaemonSet selector %v does not select its pods %v", ds.Spec.Selector, pod.Labels)
	}
	if selects(t, ds.Spec.Selector, controllerPod.Labels) || selects(t, r.pdbs[0].Spec.Selector, pod.Labels) {
		t.Errorf("agent and controller selectors overlap")
	}
	if len(pod.Spec.InitContainers) != 0 || len(pod.Spec.Containers) != 1 {
		t.Fatalf("agent pod has %d init containers and %d containers, want 0 and 1", len(pod.Spec.InitContainers), len(pod.Spec.Containers))
	}
	ctr := pod.Spec.Containers[0]
	if len(ctr.Command) != 0 {
		t.Errorf("agent command %v replaces the image's entrypoint, which enrols the node", ctr.Command)
	}
	flags(t, "agent", ctr.Args) // every argument is a --flag=value for run
	known := entrypointVars(t)
	for _, e := range ctr.Env {
		if strings.HasPrefix(e.Name, "OPSCONDUCTOR_JOIN") && !known[e.Name] {
			t.Errorf("env %s is not one the image's entrypoint reads (it reads %v)", e.Name, sortedKeys(known))
		}
	}
	dataDir, _ := envValue(ctr, "OPSCONDUCTOR_AGENT_DATA_DIR")
	controller, _ := envValue(ctr, "OPSCONDUCTOR_AGENT_CONTROLLER")
	host, _, _ := net.SplitHostPort(controller)
	if want := "oc-opsconductor.ops.svc"; host != want {
		t.Errorf("agents connect to %q, want the controllers' Service %q", host, want)
	}
	if svc := r.services["oc-opsconductor"]; svc == nil || int(servicePort(svc, "agent")) != port(t, controller) {
		t.Errorf("agents connect to port %d, which is not the Service's agent port", port(t, controller))
	}
	if got := envFieldRef(ctr, "OPSCONDUCTOR_JOIN_NAME"); got != "spec.nodeName" {
		t.Errorf("agent name comes from %q, want spec.nodeName", got)
	}
	if tags, _ := envValue(ctr, "OPSCONDUCTOR_JOIN_TAGS"); slices.Contains(c.sets, "agent.tags=env=prod,team=ops") && tags != "env=prod,team=ops" {
		t.Errorf("OPSCONDUCTOR_JOIN_TAGS=%q, want the values' agent.tags", tags)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	for _, name := range []string{"OPSCONDUCTOR_JOIN_TOKEN_FILE", "OPSCONDUCTOR_JOIN_CA_PIN_FILE"} {
		p, _ := envValue(ctr, name)
		checkMountedFile(t, ctr, volumes, name, p)
		if m := mountOf(ctr, p); m != nil && volumes[m.Name].Secret.SecretName != "join" {
			t.Errorf("%s is not from the join Secret", name)
		}
	}
	if _, inEnv := envValue(ctr, "OPSCONDUCTOR_JOIN_TOKEN"); inEnv || envFieldRef(ctr, "OPSCONDUCTOR_JOIN_TOKEN") != "" {
		t.Errorf("the join token is in the agent's environment")
	}
	probe := ctr.LivenessProbe
	if probe == nil || probe.Exec == nil || !slices.Contains(probe.Exec.Command, "--data-dir="+dataDir) {
		t.Errorf("agent liveness probe %+v does not check the agent's data dir %s", probe, dataDir)
	}
	m := mountOf(ctr, dataDir)
	if m == nil || volumes[m.Name].HostPath == nil {
		t.Errorf("the agent's data dir %q is not on the node (a new pod would enrol again)", dataDir)
	}
	sc := ctr.SecurityContext
	privileged := sc != nil && sc.Privileged != nil && *sc.Privileged
	if privileged != c.hostAccess {
		t.Errorf("privileged %v, want %v", privileged, c.hostAccess)
	}
	if !c.hostAccess && (sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL")) {
		t.Errorf("without host access every capability is dropped, got %+v", sc)
	}
	if pod.Spec.HostPID != c.hostAccess || pod.Spec.HostNetwork != c.hostAccess {
		t.Errorf("hostPID %v hostNetwork %v, want %v", pod.Spec.HostPID, pod.Spec.HostNetwork, c.hostAccess)
	}
	if c.hostAccess && pod.Spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("dnsPolicy %q on the host network: the controllers' Service names would not resolve", pod.Spec.DNSPolicy)
	}
	if c.hostAccess && mountOf(ctr, "/host/etc") == nil {
		t.Errorf("with host access the node's root is mounted at /host")
	}
}

// TestBadValuesFailWithTheirField: a mistake in the values stops the
// install with a message naming the field, before anything is applied.
func TestBadValuesFailWithTheirField(t *testing.T) {
	for _, c := range []struct {
		name string
		sets []string
		want []string
	}{
		{"no history store", nil, []string{"history.dsn or history.existingSecret is required"}},
		{"two history stores", []string{historyDSN, "history.existingSecret=pg"}, []string{"history.dsn and history.existingSecret are both set"}},
		{"a history URL that is not PostgreSQL", []string{"history.dsn=mysql://db/oc"}, []string{"/history/dsn"}},
		{"a password key without a Secret", []string{historyDSN, "history.passwordKey=pw"}, []string{"history.passwordKey", "history.existingSecret"}},
		{"an even number of controllers", []string{historyDSN, "replicas=4"}, []string{"/replicas", "1, 3, 5, 7"}},
		{"replicas as text", []string{historyDSN, "replicas=three"}, []string{"/replicas"}},
		{"a port out of range", []string{historyDSN, "ports.raft=70000"}, []string{"/ports/raft"}},
		{"two listeners on one port", []string{historyDSN, "ports.agent=3000"}, []string{"ports.http, ports.agent and ports.raft must differ"}},
		{"a misspelt top-level key", []string{historyDSN, "replica=3"}, []string{"replica"}},
		{"a misspelt nested key", []string{historyDSN, "agent.enable=true"}, []string{"/agent", "enable"}},
		{"an unknown log level", []string{historyDSN, "server.logLevel=verbose"}, []string{"/server/logLevel"}},
		{"a volume size that is no quantity", []string{historyDSN, "persistence.size=ten gigs"}, []string{"/persistence/size"}},
		{"a history retention that is no duration", []string{historyDSN, "history.retention=30 days"}, []string{"/history/retention"}},
		{"agents without a join Secret", []string{historyDSN, "agent.enabled=true"}, []string{"agent.joinSecret is required"}},
		{"agent tags that are not k=v", []string{historyDSN, "agent.enabled=true", "agent.joinSecret=j", "agent.tags=prod"}, []string{"/agent/tags"}},
		{"a Secret name that Kubernetes refuses", []string{historyDSN, "tls.existingSecret=My_CA"}, []string{"/tls/existingSecret"}},
		{"an extra argument that is no flag", []string{historyDSN, "server.extraArgs=[debug]"}, []string{"/server/extraArgs/0"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := render(values(t, c.sets...))
			if err == nil {
				t.Fatal("rendered without an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestLint runs `helm lint`'s rules (Chart.yaml, values schema, templates
// and the YAML they produce) over the value sets above.
func TestLint(t *testing.T) {
	for _, c := range chartCases() {
		t.Run(c.name, func(t *testing.T) {
			res := lint.All(chartDir, values(t, c.sets...), namespace, false)
			for _, m := range res.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %v", m)
				}
			}
		})
	}
}
