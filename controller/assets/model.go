package assets

import (
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/controller/assets/selector"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// Connection types.
const (
	ConnAgent = "agent"
	ConnSSH   = "ssh"
)

// Host key policies for SSH targets: trust on first use, or only the key
// given up front.
const (
	HostKeyTOFU   = "tofu"
	HostKeyPinned = "pinned"
)

// Target statuses beyond the agent's own (enrolled, up, down, revoked):
// an SSH target's reachability is known only from its runs.
const StatusUnknown = "unknown"

// Connection says how the controller reaches a target: through the agent
// on it, or over SSH from a relay agent.
type Connection struct {
	Type string `json:"type"`
	// AgentID is the agent on the target (type agent).
	AgentID string `json:"agent_id,omitempty"`
	// Via names the relay agent (its name or ID) an SSH target is reached
	// from.
	Via      string `json:"via,omitempty"`
	Port     int    `json:"port,omitempty"`
	Username string `json:"username,omitempty"`
	// HostKey is the expected SSH host key ("ssh-ed25519 AAAA…"); with the
	// tofu policy the ssh step records it on first contact.
	HostKey       string `json:"host_key,omitempty"`
	HostKeyPolicy string `json:"host_key_policy,omitempty"`
}

// RunOutcome is the last run that touched a target, as automation
// reports it.
type RunOutcome struct {
	RunID   string    `json:"run_id"`
	Outcome string    `json:"outcome"`
	At      time.Time `json:"at"`
}

// Status is what is known about a target's health.
type Status struct {
	// Agent is the agent's state (enrolled, up, down, revoked) for agent
	// targets, "unknown" for SSH targets.
	Agent    string      `json:"agent"`
	LastSeen *time.Time  `json:"last_seen,omitempty"`
	LastRun  *RunOutcome `json:"last_run,omitempty"`
}

// Target is one host the platform can run steps on. Stored rows hold what
// operators wrote; an agent's target is its agent merged with an optional
// stored overlay (tags, groups, owner, notes), so that its facts and
// status are always the agent's own.
type Target struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Addresses  []string          `json:"addresses"`
	Connection Connection        `json:"connection"`
	Tags       map[string]string `json:"tags"`
	// Groups are the static groups the target is listed in; DynamicGroups
	// (computed on read) those whose selector matches it.
	Groups        []string          `json:"groups"`
	DynamicGroups []string          `json:"dynamic_groups,omitempty"`
	Owner         string            `json:"owner,omitempty"`
	Notes         string            `json:"notes,omitempty"`
	Facts         map[string]string `json:"facts"`
	Status        Status            `json:"status"`
	CreatedAt     time.Time         `json:"created_at"`
	CreatedBy     string            `json:"created_by,omitempty"`
	UpdatedAt     time.Time         `json:"updated_at"`
	// Revision is the Raft index of the last change to the stored row (0
	// for an agent's target nobody has annotated).
	Revision uint64 `json:"revision"`
}

// Tag implements selector.Labels.
func (t *Target) Tag(key string) (string, bool) { v, ok := t.Tags[key]; return v, ok }

// Fact implements selector.Labels.
func (t *Target) Fact(name string) (string, bool) { v, ok := t.Facts[name]; return v, ok }

// InGroup reports whether the target is listed in the static group.
func (t *Target) InGroup(name string) bool { return slices.Contains(t.Groups, name) }

// overlay reports whether the row annotates an agent's target.
func (t *Target) overlay() bool { return t.Connection.Type == ConnAgent }

func (t *Target) clone() *Target {
	c := *t
	c.Addresses = slices.Clone(t.Addresses)
	c.Tags = maps.Clone(t.Tags)
	c.Groups = slices.Clone(t.Groups)
	c.DynamicGroups = slices.Clone(t.DynamicGroups)
	c.Facts = maps.Clone(t.Facts)
	if t.Status.LastRun != nil {
		r := *t.Status.LastRun
		c.Status.LastRun = &r
	}
	if t.Status.LastSeen != nil {
		s := *t.Status.LastSeen
		c.Status.LastSeen = &s
	}
	return &c
}

// normalize gives empty collections their JSON form ([] and {}).
func (t *Target) normalize() {
	if t.Addresses == nil {
		t.Addresses = []string{}
	}
	if t.Tags == nil {
		t.Tags = map[string]string{}
	}
	if t.Groups == nil {
		t.Groups = []string{}
	}
	if t.Facts == nil {
		t.Facts = map[string]string{}
	}
}

// Group kinds.
const (
	GroupStatic  = "static"
	GroupDynamic = "dynamic"
)

// Group is a named set of targets: static (targets list it in their
// groups) or dynamic (a selector evaluated whenever it is read).
type Group struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	Selector    string    `json:"selector,omitempty"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
	Revision    uint64    `json:"revision"`
}

// TargetInput is what a client writes: every field an operator owns.
// Pointer fields distinguish "not given" from "empty" in updates.
type TargetInput struct {
	Name       string            `json:"name"`
	Addresses  []string          `json:"addresses,omitempty"`
	Connection *Connection       `json:"connection,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	Groups     []string          `json:"groups,omitempty"`
	Owner      string            `json:"owner,omitempty"`
	Notes      string            `json:"notes,omitempty"`
}

// TargetPatch changes some fields of a target; nil fields stay.
type TargetPatch struct {
	Name       *string            `json:"name,omitempty"`
	Addresses  *[]string          `json:"addresses,omitempty"`
	Connection *Connection        `json:"connection,omitempty"`
	Tags       *map[string]string `json:"tags,omitempty"`
	Groups     *[]string          `json:"groups,omitempty"`
	Owner      *string            `json:"owner,omitempty"`
	Notes      *string            `json:"notes,omitempty"`
	// Revision, when set, must be the target's current revision: the
	// update is refused (409) if someone changed it since it was read.
	Revision *uint64 `json:"revision,omitempty"`
}

// GroupInput creates or replaces a group. Members (static groups only)
// replaces the set of targets listed in the group, by name or ID.
type GroupInput struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	Selector    string    `json:"selector,omitempty"`
	Description string    `json:"description,omitempty"`
	Members     *[]string `json:"members,omitempty"`
}

var (
	targetNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?$`)
	groupNameRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$`)
	tagKeyRE     = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_./-]{0,126}[A-Za-z0-9])?$`)
	tagValueRE   = regexp.MustCompile(`^[A-Za-z0-9_./:@+*-]{0,128}$`)
	hostLabelRE  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	usernameRE   = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$`)
)

// Limits on what one target may carry.
const (
	maxAddresses = 16
	maxTags      = 64
	maxGroups    = 64
	maxOwner     = 128
	maxNotes     = 4096
	maxHostKey   = 8192
)

// validAddress accepts an IP address or a DNS host name.
func validAddress(a string) error {
	if _, err := netip.ParseAddr(a); err == nil {
		return nil
	}
	if len(a) == 0 || len(a) > 253 {
		return fmt.Errorf("must be an IP address or a host name of 1 to 253 characters")
	}
	labels := strings.Split(strings.TrimSuffix(a, "."), ".")
	for _, l := range labels {
		if !hostLabelRE.MatchString(l) {
			return fmt.Errorf("%q is neither an IP address nor a valid host name (label %q)", a, l)
		}
	}
	if _, err := strconv.Atoi(labels[len(labels)-1]); err == nil {
		return fmt.Errorf("%q is neither an IP address nor a host name (a host name's last label is not a number)", a)
	}
	return nil
}

// ValidTagKey reports whether k may be a tag key. "facts." is reserved:
// selectors read facts through it.
func ValidTagKey(k string) bool {
	return tagKeyRE.MatchString(k) && !strings.HasPrefix(k, selector.FactsPrefix)
}

// checkTags validates tags under field.
func checkTags(field string, tags map[string]string, errs *problem.List) {
	if len(tags) > maxTags {
		errs.Add(field, "at most %d tags", maxTags)
	}
	keys := slices.Sorted(maps.Keys(tags))
	for _, k := range keys {
		if !ValidTagKey(k) {
			errs.Add(field+"."+k, "tag keys are 1 to 128 letters, digits and _ . / -, starting and ending with a letter or digit, and not starting with \"facts.\"")
			continue
		}
		if !tagValueRE.MatchString(tags[k]) {
			errs.Add(field+"."+k, "tag values are at most 128 letters, digits and _ . / : @ + * -, got %q", tags[k])
		}
	}
}

// checkGroupNames validates a target's static group list.
func checkGroupNames(field string, groups []string, errs *problem.List) {
	if len(groups) > maxGroups {
		errs.Add(field, "at most %d groups", maxGroups)
	}
	seen := map[string]bool{}
	for i, g := range groups {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case !groupNameRE.MatchString(g):
			errs.Add(f, "group names are 1 to 63 lower-case letters, digits and _ . -, got %q", g)
		case seen[g]:
			errs.Add(f, "group %q is listed twice", g)
		}
		seen[g] = true
	}
}

// checkConnection validates a connection for a stored (non-agent) target.
func checkConnection(field string, c Connection, errs *problem.List) {
	switch c.Type {
	case ConnSSH:
		if c.Via == "" {
			errs.Add(field+".via", "is required for an ssh target: the agent that relays the connection")
		}
		if c.Port < 0 || c.Port > 65535 {
			errs.Add(field+".port", "must be 1 to 65535, got %d", c.Port)
		}
		if c.Username != "" && !usernameRE.MatchString(c.Username) {
			errs.Add(field+".username", "must be a user name of at most 64 characters, got %q", c.Username)
		}
		switch c.HostKeyPolicy {
		case "", HostKeyTOFU:
		case HostKeyPinned:
			if c.HostKey == "" {
				errs.Add(field+".host_key", "is required when host_key_policy is pinned")
			}
		default:
			errs.Add(field+".host_key_policy", "must be tofu or pinned, got %q", c.HostKeyPolicy)
		}
		if len(c.HostKey) > maxHostKey || (c.HostKey != "" && len(strings.Fields(c.HostKey)) < 2) {
			errs.Add(field+".host_key", "must be a public key in authorized_keys form (\"ssh-ed25519 AAAA…\")")
		}
		if c.AgentID != "" {
			errs.Add(field+".agent_id", "is only for agent targets")
		}
	case ConnAgent:
		errs.Add(field+".type", "agent targets appear when their agent enrols; create an ssh target, or annotate the agent's target")
	case "":
		errs.Add(field+".type", "is required: ssh (agent targets appear by themselves)")
	default:
		errs.Add(field+".type", "must be ssh or agent, got %q", c.Type)
	}
}

// checkInput validates a target as written by a client, every problem at
// once, under prefix ("" or "rows[3].").
func checkInput(prefix string, in TargetInput, errs *problem.List) {
	switch {
	case !targetNameRE.MatchString(in.Name):
		errs.Add(prefix+"name", "must be 1 to 253 letters, digits and _ . -, starting and ending with a letter or digit, got %q", in.Name)
	case in.Name == "import" || in.Name == "export":
		// GET /api/v1/targets/export is a route: a target of that name
		// could not be read by it.
		errs.Add(prefix+"name", "%q is reserved", in.Name)
	}
	checkAddresses(prefix+"addresses", in.Addresses, errs)
	if in.Connection == nil {
		errs.Add(prefix+"connection", "is required")
	} else {
		checkConnection(prefix+"connection", *in.Connection, errs)
	}
	checkTags(prefix+"tags", in.Tags, errs)
	checkGroupNames(prefix+"groups", in.Groups, errs)
	checkFreeText(prefix, in.Owner, in.Notes, errs)
}

func checkAddresses(field string, addrs []string, errs *problem.List) {
	if len(addrs) == 0 {
		errs.Add(field, "at least one address (IP or host name) is required")
	}
	if len(addrs) > maxAddresses {
		errs.Add(field, "at most %d addresses", maxAddresses)
	}
	for i, a := range addrs {
		if err := validAddress(a); err != nil {
			errs.Add(fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
	}
}

func checkFreeText(prefix, owner, notes string, errs *problem.List) {
	if len(owner) > maxOwner || strings.ContainsAny(owner, "\n\r\x00") {
		errs.Add(prefix+"owner", "must be one line of at most %d characters", maxOwner)
	}
	if len(notes) > maxNotes || strings.ContainsRune(notes, 0) {
		errs.Add(prefix+"notes", "must be at most %d characters", maxNotes)
	}
}

// checkGroup validates a group as written.
func checkGroup(in GroupInput, errs *problem.List) (selector.Selector, bool) {
	if !groupNameRE.MatchString(in.Name) {
		errs.Add("name", "group names are 1 to 63 lower-case letters, digits and _ . -, got %q", in.Name)
	}
	if len(in.Description) > maxOwner*4 {
		errs.Add("description", "must be at most %d characters", maxOwner*4)
	}
	switch in.Kind {
	case GroupStatic:
		if in.Selector != "" {
			errs.Add("selector", "is only for dynamic groups")
		}
	case GroupDynamic:
		if in.Members != nil {
			errs.Add("members", "a dynamic group's members follow its selector; list members only in a static group")
		}
		sel, err := selector.Parse(in.Selector)
		if err != nil {
			errs.Add("selector", "%v", err)
			return selector.Selector{}, false
		}
		return sel, true
	default:
		errs.Add("kind", "must be static or dynamic, got %q", in.Kind)
	}
	return selector.Selector{}, false
}

// facts flattens an agent's facts into the string map selectors read.
func flattenFacts(f AgentFacts) map[string]string {
	out := map[string]string{}
	for k, v := range f.Extra {
		out[k] = v
	}
	set := func(k, v string) {
		if v != "" {
			out[k] = v
		}
	}
	set("hostname", f.Hostname)
	set("os", f.OS)
	set("os_version", f.OSVersion)
	set("kernel", f.Kernel)
	set("arch", f.Arch)
	if f.CPUs > 0 {
		out["cpus"] = strconv.Itoa(f.CPUs)
	}
	if f.MemoryBytes > 0 {
		out["memory_bytes"] = strconv.FormatUint(f.MemoryBytes, 10)
	}
	if len(f.Addresses) > 0 {
		out["addresses"] = strings.Join(f.Addresses, ",")
	}
	return out
}

// sortedUnique returns s sorted without duplicates.
func sortedUnique(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return slices.Compact(out)
}
