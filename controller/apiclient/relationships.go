package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The relationships API's documents, mirroring the controller's JSON.

// Relationship is a typed edge between two targets. From and To are
// target IDs; FromName and ToName their current names (empty in a graph
// answer, whose nodes carry the names).
type Relationship struct {
	ID         string            `json:"id"`
	From       string            `json:"from"`
	To         string            `json:"to"`
	Type       string            `json:"type"`
	Attributes map[string]string `json:"attributes,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
	CreatedBy  string            `json:"created_by,omitempty"`
	UpdatedAt  time.Time         `json:"updated_at"`
	UpdatedBy  string            `json:"updated_by,omitempty"`
	FromName   string            `json:"from_name,omitempty"`
	ToName     string            `json:"to_name,omitempty"`
}

// CreateRelationshipRequest is the body of POST /api/v1/relationships;
// From and To name targets by ID or name.
type CreateRelationshipRequest struct {
	From       string            `json:"from"`
	Type       string            `json:"type"`
	To         string            `json:"to"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// RelationshipFilter selects relationships to list.
type RelationshipFilter struct {
	From, To, Type string
	After          string
	Limit          int
}

// RelationshipPage is one page of relationships.
type RelationshipPage struct {
	Items []Relationship `json:"items"`
	Next  string         `json:"next"`
}

// GraphQuery asks for the graph around a target. Zero values take the
// controller's defaults.
type GraphQuery struct {
	Direction string // both, dependents or dependencies
	Depth     int
	Types     []string
	Limit     int
}

// GraphNode is a target in a graph answer, Depth hops from the root.
type GraphNode struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Depth int    `json:"depth"`
}

// Graph is the answer of GET /api/v1/targets/{target}/graph.
type Graph struct {
	Root      string         `json:"root"`
	Direction string         `json:"direction"`
	Depth     int            `json:"depth"`
	Nodes     []GraphNode    `json:"nodes"`
	Edges     []Relationship `json:"edges"`
	Truncated bool           `json:"truncated"`
}

// CreateRelationship relates two targets.
func (c *Client) CreateRelationship(ctx context.Context, req CreateRelationshipRequest) (Relationship, error) {
	var out Relationship
	err := c.do(ctx, http.MethodPost, "/api/v1/relationships", req, &out)
	return out, err
}

// ListRelationships returns one page of relationships.
func (c *Client) ListRelationships(ctx context.Context, f RelationshipFilter) (RelationshipPage, error) {
	q := url.Values{}
	for k, v := range map[string]string{"from": f.From, "to": f.To, "type": f.Type, "after": f.After} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out RelationshipPage
	err := c.do(ctx, http.MethodGet, relPath("/api/v1/relationships", q), nil, &out)
	return out, err
}

// GetRelationship returns one relationship.
func (c *Client) GetRelationship(ctx context.Context, id string) (Relationship, error) {
	var out Relationship
	err := c.do(ctx, http.MethodGet, "/api/v1/relationships/"+url.PathEscape(id), nil, &out)
	return out, err
}

// PatchRelationship sets attributes (a nil value removes one).
func (c *Client) PatchRelationship(ctx context.Context, id string, attrs map[string]*string) (Relationship, error) {
	var out Relationship
	err := c.do(ctx, http.MethodPatch, "/api/v1/relationships/"+url.PathEscape(id), map[string]any{"attributes": attrs}, &out)
	return out, err
}

// DeleteRelationship deletes a relationship and returns what it was.
func (c *Client) DeleteRelationship(ctx context.Context, id string) (Relationship, error) {
	var out Relationship
	err := c.do(ctx, http.MethodDelete, "/api/v1/relationships/"+url.PathEscape(id), nil, &out)
	return out, err
}

// TargetGraph walks the graph around a target named by ID or name.
func (c *Client) TargetGraph(ctx context.Context, target string, gq GraphQuery) (Graph, error) {
	q := url.Values{}
	if gq.Direction != "" {
		q.Set("direction", gq.Direction)
	}
	if gq.Depth > 0 {
		q.Set("depth", strconv.Itoa(gq.Depth))
	}
	if gq.Limit > 0 {
		q.Set("limit", strconv.Itoa(gq.Limit))
	}
	for _, t := range gq.Types {
		q.Add("type", t)
	}
	var out Graph
	err := c.do(ctx, http.MethodGet, relPath("/api/v1/targets/"+url.PathEscape(target)+"/graph", q), nil, &out)
	return out, err
}

// relPath appends q to path when it has any values.
func relPath(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
