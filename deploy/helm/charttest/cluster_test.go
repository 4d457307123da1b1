package charttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestStatefulSetFormsACluster runs the rendered StatefulSet's three
// controllers as real processes, as the kubelet would: the container args
// with $(POD_NAME) expanded, the environment from the rendered Secrets, the
// Secret volumes as files. Kubernetes' DNS is the one thing replaced: each
// pod's name under the headless Service becomes a loopback address of its
// own (127.0.0.11, .12, .13, all listening on the same ports, as pods do).
// The cluster must bootstrap from --bootstrap-expect and --retry-join alone
// and agree on a leader.
func TestStatefulSetFormsACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three controllers; skipped with -short")
	}
	bin := controllerBin(t)
	dsn := historyDatabase(t)
	ips := []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}
	ports := sharedPorts(t, ips, 3)
	r := must(t, values(t, "history.dsn="+dsn, "server.logFormat=text", "agent.enabled=true", "agent.joinSecret=join", "agent.hostAccess=false",
		fmt.Sprintf("ports.http=%d", ports[0]), fmt.Sprintf("ports.agent=%d", ports[1]), fmt.Sprintf("ports.raft=%d", ports[2])))
	sts := r.statefulSets[0]
	pod := sts.Spec.Template.Spec
	ctr := pod.Containers[0]

	// The names Kubernetes' DNS would resolve, mapped to the pods' addresses.
	dns := map[string]string{}
	for i, ip := range ips {
		dns[fmt.Sprintf("%s-%d.%s.%s.svc", sts.Name, i, sts.Spec.ServiceName, namespace)] = ip
	}
	resolve := func(arg string) string {
		for name, ip := range dns {
			arg = strings.ReplaceAll(arg, name, ip)
		}
		return arg
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type proc struct {
		name   string
		logs   bytes.Buffer
		exited chan error
	}
	var procs []*proc
	defer func() {
		cancel()
		for _, p := range procs {
			<-p.exited
			if t.Failed() {
				t.Logf("----- %s -----\n%s", p.name, p.logs.String())
			}
		}
	}()
	for i, ip := range ips {
		podName := fmt.Sprintf("%s-%d", sts.Name, i)
		root := t.TempDir()
		var args []string
		for _, a := range ctr.Args {
			a = resolve(strings.ReplaceAll(a, "$(POD_NAME)", podName))
			a = strings.ReplaceAll(a, "=0.0.0.0:", "="+ip+":")
			args = append(args, rebase(t, ctr, root, a))
		}
		materialize(t, r, pod, ctr, root)
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), podEnv(t, r, ctr, map[string]string{"metadata.name": podName})...)
		p := &proc{name: podName, exited: make(chan error, 1)}
		cmd.Stdout, cmd.Stderr = &p.logs, &p.logs
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 20 * time.Second
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", podName, err)
		}
		go func() { p.exited <- cmd.Wait(); close(p.exited) }() // closed: a second receive does not block
		procs = append(procs, p)
	}

	// Every controller is ready (its readiness probe passes) and all name
	// the same leader.
	deadline := time.Now().Add(90 * time.Second)
	var leader string
	for {
		leaders := map[string]bool{}
		ready := 0
		for i, ip := range ips {
			select {
			case err := <-procs[i].exited:
				t.Fatalf("%s exited: %v", procs[i].name, err)
			default:
			}
			base := fmt.Sprintf("http://%s:%d", ip, ports[0])
			var h struct {
				Raft struct {
					LeaderID string `json:"leader_id"`
				} `json:"raft"`
			}
			if getJSON(base+"/health", &h) == nil && h.Raft.LeaderID != "" {
				leaders[h.Raft.LeaderID] = true
			}
			if getJSON(base+"/health/ready", nil) == nil {
				ready++
			}
		}
		if ready == len(ips) && len(leaders) == 1 {
			for l := range leaders {
				leader = l
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cluster within 90s: %d of %d ready, leaders seen %v", ready, len(ips), sortedKeys(leaders))
		}
		time.Sleep(200 * time.Millisecond) // polling a deadline, not synchronising
	}
	if !strings.HasPrefix(leader, sts.Name+"-") {
		t.Fatalf("leader %q is not named after its pod", leader)
	}
	// The Service may hand an agent to any ready controller: give it a
	// follower, which must redirect it to the leader's advertised name.
	follower := ips[0]
	if leader == sts.Name+"-0" {
		follower = ips[1]
	}
	api := fmt.Sprintf("http://%s:%d", follower, ports[0])
	runAgent(t, ctx, r, api, func(addr string) string {
		return strings.ReplaceAll(addr, "oc-opsconductor.ops.svc", follower)
	})
}

// runAgent runs the DaemonSet's agent container as the kubelet would, with
// the image's own entrypoint (deploy/docker/agent-entrypoint.sh) and a join
// Secret made from a real join token, and waits until the agent is enrolled
// under its node's name and connected.
func runAgent(t *testing.T, ctx context.Context, r *rendered, api string, resolve func(string) string) {
	t.Helper()
	ctrlBin, agBin := controllerBin(t), agentBin(t)
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to run the agent image's entrypoint")
	}
	cliEnv := append(os.Environ(), "OPSCONDUCTOR_CONFIG_DIR="+t.TempDir(), "OPSCONDUCTOR_TOKEN=", "OPSCONDUCTOR_ADDR=")
	cli := func(stdin string, args ...string) []byte {
		cmd := exec.CommandContext(ctx, ctrlBin, args...)
		cmd.Env, cmd.Stdin = cliEnv, strings.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("opsconductor %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	cli(string(r.secrets["oc-opsconductor-admin"].Data["password"]), "login", "--address", api, "--username", "admin", "--password-stdin")
	var tok struct {
		Token string `json:"token"`
		CAPin string `json:"ca_pin"`
	}
	if err := json.Unmarshal(cli("", "agent", "join-token", "create", "--address", api, "--max-uses", "3", "--json"), &tok); err != nil || tok.Token == "" || tok.CAPin == "" {
		t.Fatalf("join token: %v %+v", err, tok)
	}

	pod := r.daemonSets[0].Spec.Template.Spec
	ctr := pod.Containers[0]
	root := t.TempDir()
	for _, m := range ctr.VolumeMounts {
		if err := os.MkdirAll(filepath.Join(root, m.MountPath), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The join Secret, as the user creates it and the kubelet mounts it.
	join := map[string]string{"token": tok.Token, "ca-pin": tok.CAPin}
	for _, v := range pod.Volumes {
		if v.Secret == nil || v.Secret.SecretName != "join" {
			continue
		}
		for _, m := range ctr.VolumeMounts {
			if m.Name != v.Name {
				continue
			}
			for _, it := range v.Secret.Items {
				if err := os.WriteFile(filepath.Join(root, m.MountPath, it.Path), []byte(join[it.Key]+"\n"), 0o400); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	var env []string
	var dataDir string
	for _, kv := range podEnv(t, r, ctr, map[string]string{"spec.nodeName": "node-a"}) {
		name, val, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(val, "/") && mountOf(ctr, val) != nil {
			val = filepath.Join(root, val)
		}
		if name == "OPSCONDUCTOR_AGENT_DATA_DIR" {
			dataDir = val
		}
		env = append(env, name+"="+resolve(val))
	}
	cmd := exec.CommandContext(ctx, "sh", append([]string{agentEntrypoint}, ctr.Args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OPSCONDUCTOR_") && !strings.HasPrefix(kv, "PATH=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(cmd.Env, "PATH="+filepath.Dir(agBin)+":"+os.Getenv("PATH")), env...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 20 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); close(exited) }() // closed: a second receive does not block
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		<-exited
		if t.Failed() {
			t.Logf("----- agent -----\n%s", logs.String())
		}
	}()

	// Its liveness probe passes once it is connected.
	probe := ctr.LivenessProbe.Exec.Command
	deadline := time.Now().Add(60 * time.Second)
	for {
		args := slices.Clone(probe[1:])
		for i, a := range args {
			if name, val, ok := strings.Cut(a, "="); ok && strings.HasPrefix(val, "/") {
				args[i] = name + "=" + filepath.Join(root, val)
			}
		}
		if exec.Command(agBin, args...).Run() == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("agent exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not healthy within 60s")
		}
		time.Sleep(200 * time.Millisecond) // polling a deadline, not synchronising
	}
	if _, err := os.Stat(filepath.Join(dataDir, "agent.json")); err != nil {
		t.Errorf("no enrolment in the data dir: %v", err)
	}
	var agents []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(cli("", "agent", "list", "--address", api, "--json"), &agents); err != nil {
		t.Fatal(err)
	}
	if len(agents) != 1 || agents[0].Name != "node-a" {
		t.Errorf("agents %+v, want one named after its node, node-a", agents)
	}
}

func getJSON(u string, into any) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	if into == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// rebase moves a flag's absolute path under root when a volume is mounted
// there (the data dir, the Secret files).
func rebase(t *testing.T, c corev1.Container, root, arg string) string {
	t.Helper()
	name, val, ok := strings.Cut(arg, "=")
	if !ok || !strings.HasPrefix(val, "/") {
		return arg
	}
	if mountOf(c, val) == nil {
		t.Fatalf("%s names a path on the read-only root filesystem", arg)
	}
	return name + "=" + filepath.Join(root, val)
}

// materialize writes the pod's Secret volumes under root as the kubelet
// would mount them, and creates its other mount points.
func materialize(t *testing.T, r *rendered, pod corev1.PodSpec, c corev1.Container, root string) {
	t.Helper()
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		dir := filepath.Join(root, m.MountPath)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		v, ok := vols[m.Name]
		if !ok || v.Secret == nil {
			continue
		}
		s := r.secrets[v.Secret.SecretName]
		if s == nil {
			t.Fatalf("volume %s: Secret %s is not rendered", v.Name, v.Secret.SecretName)
		}
		for _, it := range v.Secret.Items {
			if err := os.WriteFile(filepath.Join(dir, it.Path), s.Data[it.Key], 0o400); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// podEnv is the container's environment as the kubelet builds it.
func podEnv(t *testing.T, r *rendered, c corev1.Container, fields map[string]string) []string {
	t.Helper()
	var env []string
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && fields[e.ValueFrom.FieldRef.FieldPath] != "":
			env = append(env, e.Name+"="+fields[e.ValueFrom.FieldRef.FieldPath])
		case e.ValueFrom.SecretKeyRef != nil:
			s := r.secrets[e.ValueFrom.SecretKeyRef.Name]
			if s == nil {
				t.Fatalf("env %s: Secret %s is not rendered", e.Name, e.ValueFrom.SecretKeyRef.Name)
			}
			env = append(env, e.Name+"="+string(s.Data[e.ValueFrom.SecretKeyRef.Key]))
		default:
			t.Fatalf("env %s: a source this test cannot provide: %+v", e.Name, e.ValueFrom)
		}
	}
	return env
}

// sharedPorts finds n ports free on every one of ips.
func sharedPorts(t *testing.T, ips []string, n int) []int {
	t.Helper()
	var out []int
	for attempt := 0; len(out) < n && attempt < 100; attempt++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Skipf("cannot listen on %s (this test needs 127.0.0.0/8 on the loopback device): %v", ips[0], err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		free := true
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p)))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		ln.Close()
		if free {
			out = append(out, p)
		}
	}
	if len(out) < n {
		t.Fatalf("found only %d ports free on all of %v", len(out), ips)
	}
	return out
}

// historyDatabase creates a fresh database on OPSCONDUCTOR_TEST_POSTGRES
// for the cluster's shared history store and drops it afterwards.
func historyDatabase(t *testing.T) string {
	t.Helper()
	admin := os.Getenv("OPSCONDUCTOR_TEST_POSTGRES")
	if admin == "" {
		t.Skip("OPSCONDUCTOR_TEST_POSTGRES is not set: a cluster of controllers needs a PostgreSQL history store")
	}
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql is not installed (apt-get install postgresql-client)")
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("OPSCONDUCTOR_TEST_POSTGRES: %v", err)
	}
	db := fmt.Sprintf("oc_helm_%d", time.Now().UnixNano())
	psql := func(sql string) {
		out, err := exec.Command("psql", admin, "-v", "ON_ERROR_STOP=1", "-qc", sql).CombinedOutput()
		if err != nil {
			t.Fatalf("psql %q: %v\n%s", sql, err, out)
		}
	}
	psql(`CREATE DATABASE "` + db + `"`)
	t.Cleanup(func() { psql(`DROP DATABASE IF EXISTS "` + db + `" WITH (FORCE)`) })
	u.Path = "/" + db
	return u.String()
}
