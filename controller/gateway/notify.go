package gateway

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/opsconductor/opsconductor/controller/communication/notify"
	"github.com/opsconductor/opsconductor/controller/communication/tmpl"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// notifyRoutes lists the notification routes: channels, templates,
// rules and deliveries. Reading takes notifications:read, changing them
// notifications:write.
func (s *Server) notifyRoutes() []route {
	r := func(method, path string, class RouteClass, access Access, h handlerFunc) route {
		return s.newRoute(method, path, class, access, s.needNotify(h))
	}
	read, write := perm(identity.PermNotificationsRead), perm(identity.PermNotificationsWrite)
	const base = "/api/v1/notifications"
	return []route{
		r(http.MethodGet, base+"/events", ClassRead, read, s.listNotifyEvents),
		consistent(r(http.MethodGet, base+"/channels", ClassRead, read, s.listChannels)),
		r(http.MethodPost, base+"/channels", ClassWrite, write, s.putChannel(true)),
		consistent(r(http.MethodGet, base+"/channels/{name}", ClassRead, read, s.getChannel)),
		r(http.MethodPut, base+"/channels/{name}", ClassWrite, write, s.putChannel(false)),
		r(http.MethodDelete, base+"/channels/{name}", ClassWrite, write, s.deleteChannel),
		r(http.MethodPost, base+"/channels/{name}/test", ClassWrite, write, s.testChannel),
		consistent(r(http.MethodGet, base+"/templates", ClassRead, read, s.listTemplates)),
		r(http.MethodPost, base+"/templates", ClassWrite, write, s.putTemplate(true)),
		r(http.MethodPost, base+"/templates/preview", ClassRead, read, s.previewTemplate),
		consistent(r(http.MethodGet, base+"/templates/{name...}", ClassRead, read, s.getTemplate)),
		r(http.MethodPut, base+"/templates/{name}", ClassWrite, write, s.putTemplate(false)),
		r(http.MethodDelete, base+"/templates/{name}", ClassWrite, write, s.deleteTemplate),
		consistent(r(http.MethodGet, base+"/rules", ClassRead, read, s.listRules)),
		r(http.MethodPost, base+"/rules", ClassWrite, write, s.putRule(true)),
		consistent(r(http.MethodGet, base+"/rules/{name}", ClassRead, read, s.getRule)),
		r(http.MethodPut, base+"/rules/{name}", ClassWrite, write, s.putRule(false)),
		r(http.MethodDelete, base+"/rules/{name}", ClassWrite, write, s.deleteRule),
		consistent(r(http.MethodGet, base+"/deliveries", ClassRead, read, s.listDeliveries)),
		consistent(r(http.MethodGet, base+"/deliveries/{id}", ClassRead, read, s.getDelivery)),
		r(http.MethodPost, base+"/deliveries/{id}/redeliver", ClassWrite, write, s.redeliver),
	}
}

// needNotify answers 503 while no notification service is wired.
func (s *Server) needNotify(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.notify == nil {
			return problem.Unavailable("notifications_unavailable", "this controller does not serve notifications: it is not wired")
		}
		return h(w, r)
	}
}

func (s *Server) listNotifyEvents(w http.ResponseWriter, r *http.Request) error {
	type ev struct {
		Type   tmpl.EventType `json:"type"`
		Sample tmpl.Event     `json:"sample"`
	}
	var out []ev
	for _, t := range tmpl.EventTypes() {
		out = append(out, ev{Type: t, Sample: tmpl.Sample(t)})
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"items": out})
	return nil
}

func (s *Server) listChannels(w http.ResponseWriter, r *http.Request) error {
	vs, err := s.notify.Channels()
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"items": vs})
	return nil
}

func (s *Server) getChannel(w http.ResponseWriter, r *http.Request) error {
	v, err := s.notify.Channel(r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, v)
	return nil
}

func actorOf(r *http.Request) string {
	if p := principal(r); p != nil {
		return p.Username
	}
	return ""
}

func (s *Server) putChannel(create bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req notify.ChannelRequest
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
		if !create {
			if err := samePathName(r, &req.Name); err != nil {
				return err
			}
		}
		v, err := s.notify.PutChannel(r.Context(), actorOf(r), req, create)
		if err != nil {
			return err
		}
		status := http.StatusOK
		if create {
			status = http.StatusCreated
			w.Header().Set("Location", "/api/v1/notifications/channels/"+v.Name)
		}
		writeJSON(w, r, status, v)
		return nil
	}
}

// samePathName fills a body's name from the path, refusing a different one.
func samePathName(r *http.Request, name *string) error {
	p := r.PathValue("name")
	if *name != "" && *name != p {
		return problem.Invalid("name", "is %q but the path names %q: a rename is a create and a delete", *name, p)
	}
	*name = p
	return nil
}

func (s *Server) deleteChannel(w http.ResponseWriter, r *http.Request) error {
	if err := s.notify.DeleteChannel(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// testChannel sends a sample event through the channel and, unless
// ?wait=false, waits for the attempt's outcome (up to 30 s).
func (s *Server) testChannel(w http.ResponseWriter, r *http.Request) error {
	var req notify.TestRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
	}
	wait := true
	if v := r.URL.Query().Get("wait"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return problem.Invalid("wait", "must be true or false")
		}
		wait = b
	}
	d, err := s.notify.Test(r.Context(), r.PathValue("name"), req)
	if err != nil {
		return err
	}
	if !wait {
		writeJSON(w, r, http.StatusAccepted, d)
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	d, err = s.notify.WaitDelivery(ctx, d.ID)
	if err != nil && ctx.Err() == nil {
		return err
	}
	status := http.StatusOK
	if d.State == notify.StatePending {
		status = http.StatusAccepted
	}
	writeJSON(w, r, status, d)
	return nil
}

func (s *Server) listTemplates(w http.ResponseWriter, r *http.Request) error {
	builtins := false
	if v := r.URL.Query().Get("builtin"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return problem.Invalid("builtin", "must be true or false")
		}
		builtins = b
	}
	ts, err := s.notify.Templates(builtins)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"items": ts})
	return nil
}

func (s *Server) getTemplate(w http.ResponseWriter, r *http.Request) error {
	t, err := s.notify.TemplateByName(r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, t)
	return nil
}

func (s *Server) putTemplate(create bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req notify.TemplateRequest
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
		if !create {
			if err := samePathName(r, &req.Name); err != nil {
				return err
			}
		}
		t, err := s.notify.PutTemplate(r.Context(), req, create)
		if err != nil {
			return err
		}
		status := http.StatusOK
		if create {
			status = http.StatusCreated
			w.Header().Set("Location", "/api/v1/notifications/templates/"+t.Name)
		}
		writeJSON(w, r, status, t)
		return nil
	}
}

func (s *Server) deleteTemplate(w http.ResponseWriter, r *http.Request) error {
	if err := s.notify.DeleteTemplate(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// previewTemplate renders a template as sent with a sample event; a
// template error is a 400 whose details carry field and line.
func (s *Server) previewTemplate(w http.ResponseWriter, r *http.Request) error {
	var req notify.PreviewRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	out, err := s.notify.Preview(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, out)
	return nil
}

func (s *Server) listRules(w http.ResponseWriter, r *http.Request) error {
	rs, err := s.notify.Rules()
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"items": rs})
	return nil
}

func (s *Server) getRule(w http.ResponseWriter, r *http.Request) error {
	v, err := s.notify.RuleByName(r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, v)
	return nil
}

func (s *Server) putRule(create bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req notify.RuleRequest
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
		if !create {
			if err := samePathName(r, &req.Name); err != nil {
				return err
			}
		}
		v, err := s.notify.PutRule(r.Context(), req, create)
		if err != nil {
			return err
		}
		status := http.StatusOK
		if create {
			status = http.StatusCreated
			w.Header().Set("Location", "/api/v1/notifications/rules/"+v.Name)
		}
		writeJSON(w, r, status, v)
		return nil
	}
}

func (s *Server) deleteRule(w http.ResponseWriter, r *http.Request) error {
	if err := s.notify.DeleteRule(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var errs problem.List
	for k := range q {
		switch k {
		case "state", "rule", "channel", "limit", "consistent":
		default:
			errs.Add(k, "unknown parameter; use state, rule, channel or limit")
		}
	}
	f := notify.DeliveryFilter{State: q.Get("state"), Rule: q.Get("rule"), Channel: q.Get("channel")}
	switch f.State {
	case "", notify.StatePending, notify.StateDelivered, notify.StateDead:
	default:
		errs.Add("state", "must be pending, delivered or dead")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			errs.Add("limit", "must be a number from 1 to 1000")
		}
		f.Limit = n
	}
	if err := errs.Err(); err != nil {
		return err
	}
	ds, err := s.notify.Deliveries(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"items": ds})
	return nil
}

func (s *Server) getDelivery(w http.ResponseWriter, r *http.Request) error {
	d, err := s.notify.Delivery(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, d)
	return nil
}

func (s *Server) redeliver(w http.ResponseWriter, r *http.Request) error {
	d, err := s.notify.Redeliver(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, d)
	return nil
}
