package gateway

// relationshipRoutes lists the relationships routes.
func (s *Server) relationshipRoutes() []route { return nil }
