package tmpl

import (
	"context"
	"errors"
	"fmt"
	"text/template/parse"
)

// guardFunc is the function injected into every range body and before every
// {{template}} call. Its name starts with an underscore so that it cannot
// clash with a function a user expects; calling it by hand only spends budget.
const guardFunc = "_step"

// callGuardFunc is injected before every {{template}} call. Calls have
// their own, smaller budget: a recursive template nests Go stack frames
// per call, and text/template's own depth limit (100000) lets a render grow
// the stack to hundreds of megabytes before it stops.
const callGuardFunc = "_call"

var errCalls = fmt.Errorf("the template makes more than %d template calls", MaxCalls)

var errBudget = fmt.Errorf("the template does more than %d loop iterations and template calls", MaxSteps)

var errDeadline = errors.New("rendering took longer than " + RenderTimeout.String())

// budget counts the work of one render. Every range iteration and every
// template call passes through step, so work between two checks is bounded
// by the size of the template source, and the total by MaxSteps.
type budget struct {
	ctx   context.Context
	steps int
	calls int
}

func (b *budget) call() (bool, error) {
	b.calls++
	if b.calls > MaxCalls {
		return false, errCalls
	}
	return b.step()
}

func (b *budget) funcs() map[string]any {
	return map[string]any{guardFunc: b.step, callGuardFunc: b.call}
}

func (b *budget) step() (bool, error) {
	b.steps++
	if b.steps > MaxSteps {
		return false, errBudget
	}
	if b.ctx.Err() != nil {
		return false, errDeadline
	}
	return true, nil
}

// noStep is the guard during parsing, where the function must exist but
// never runs.
func noStep() (bool, error) { return true, nil }

// injectGuards rewrites a parsed tree in place: every range body starts with
// {{if _step}}{{end}}, and every {{template}} call is preceded by
// {{if _call}}{{end}}. The
// injected nodes carry the position of the range or call they guard, so an
// error raised by the budget names the user's line.
func injectGuards(t *parse.Tree) {
	if t == nil || t.Root == nil {
		return
	}
	guardList(t.Root)
}

func guardList(l *parse.ListNode) {
	if l == nil {
		return
	}
	nodes := make([]parse.Node, 0, len(l.Nodes))
	for _, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.IfNode:
			guardList(n.List)
			guardList(n.ElseList)
		case *parse.WithNode:
			guardList(n.List)
			guardList(n.ElseList)
		case *parse.RangeNode:
			guardList(n.List)
			guardList(n.ElseList)
			if n.List == nil {
				n.List = &parse.ListNode{NodeType: parse.NodeList, Pos: n.Pos}
			}
			n.List.Nodes = append([]parse.Node{guardNode(guardFunc, n.Pos, n.Line)}, n.List.Nodes...)
		case *parse.TemplateNode:
			nodes = append(nodes, guardNode(callGuardFunc, n.Pos, n.Line))
		}
		nodes = append(nodes, n)
	}
	l.Nodes = nodes
}

// guardNode builds {{if _step}}{{end}}: an if, unlike an action, writes
// nothing, so html/template's escaper leaves it alone in every context.
func guardNode(name string, pos parse.Pos, line int) *parse.IfNode {
	id := parse.NewIdentifier(name).SetPos(pos)
	cmd := &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos, Args: []parse.Node{id}}
	pipe := &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Line: line, Cmds: []*parse.CommandNode{cmd}}
	return &parse.IfNode{BranchNode: parse.BranchNode{
		NodeType: parse.NodeIf, Pos: pos, Line: line, Pipe: pipe,
		List: &parse.ListNode{NodeType: parse.NodeList, Pos: pos},
	}}
}
